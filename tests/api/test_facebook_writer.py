"""The webhook writer against real PostgreSQL and Redis: what it stores, and how it enqueues what it stored."""

from __future__ import annotations

import asyncio
import json
import time

import dramatiq

from airy_actors.models import WebhookRequest
from api import facebook_writer
from api.facebook_writer import REQUESTS_PER_MESSAGE, WebhookWriter
from tests.support import entry, sign, text_message, wait_until, webhook_body

PAGE = "1001"


def bodies(count: int) -> list[bytes]:
    return [webhook_body(entry(PAGE, text_message(PAGE, "2001", f"m_{n}", f"hello {n}"))) for n in range(count)]


def ingestion_messages(broker: dramatiq.Broker) -> list[list[int]]:
    """The stored request ids that each ``ingest_webhook_requests`` message in the broker names."""
    raw = broker.client.hvals(f"{broker.namespace}:ingestion.msgs")
    messages = [json.loads(message) for message in raw]
    return [message["args"][0] for message in messages if message["actor_name"] == "ingest_webhook_requests"]


async def submit_all(writer: WebhookWriter, posted: list[bytes]) -> list[tuple[int, bool]]:
    return await asyncio.wait_for(asyncio.gather(*(writer.submit(body) for body in posted)), timeout=30)


def test_a_burst_of_requests_is_enqueued_in_a_few_full_messages_each_request_once(db, broker):
    # Given 150 different requests answered together
    writer = WebhookWriter()
    stored = asyncio.run(submit_all(writer, bodies(150)))
    # Then each was stored, once
    ids = [row_id for row_id, new in stored]
    assert all(new for _, new in stored) and len(set(ids)) == 150 == WebhookRequest.select().count()
    # And within moments all are enqueued for ingestion, in a handful of messages, each request named once
    wait_until(lambda: sum(map(len, ingestion_messages(broker))) == 150, timeout=5, message="all enqueued")
    messages = ingestion_messages(broker)
    assert sorted(row_id for message in messages for row_id in message) == sorted(ids)
    assert len(messages) <= 150 // REQUESTS_PER_MESSAGE + 2
    assert max(map(len, messages)) == REQUESTS_PER_MESSAGE


def test_a_lone_request_is_enqueued_within_milliseconds_of_its_answer(db, broker):
    # Given a quiet web, When one request is answered
    writer = WebhookWriter()
    [(row_id, new)] = asyncio.run(submit_all(writer, bodies(1)))
    answered = time.monotonic()
    # Then it is enqueued on its own, without waiting for others to fill a message
    wait_until(lambda: ingestion_messages(broker), timeout=5, interval=0.001, message="the request was enqueued")
    assert time.monotonic() - answered < 0.5
    assert new and ingestion_messages(broker) == [[row_id]]


def test_a_request_posted_again_is_answered_as_stored_and_not_enqueued_again(db, broker):
    # Given a request already stored and enqueued
    writer = WebhookWriter()
    [body] = bodies(1)
    [(row_id, _)] = asyncio.run(submit_all(writer, [body]))
    wait_until(lambda: ingestion_messages(broker), timeout=5, message="the first delivery was enqueued")
    # When Facebook delivers it again, twice in one batch
    again = asyncio.run(submit_all(writer, [body, body]))
    # Then both are answered with the stored row, and nothing more is enqueued
    assert again == [(row_id, False), (row_id, False)]
    time.sleep(0.05)  # ten times the longest that the writer holds a new request back
    assert ingestion_messages(broker) == [[row_id]]


def test_closing_the_writer_enqueues_what_it_held_back_and_a_later_request_is_served(db, broker, monkeypatch):
    # Given a writer that holds stored requests back for a minute
    monkeypatch.setattr(facebook_writer, "ENQUEUE_WITHIN_S", 60.0)
    writer = WebhookWriter()
    first, second = bodies(2)
    [(row_id, _)] = asyncio.run(submit_all(writer, [first]))
    time.sleep(0.05)
    assert ingestion_messages(broker) == []
    # When it is closed (the web stops), Then what it held back is enqueued before close returns
    writer.close(timeout_s=5)
    assert ingestion_messages(broker) == [[row_id]]
    # And a request that comes later still gets its answer, from a new thread
    [(later_id, new)] = asyncio.run(submit_all(writer, [second]))
    assert new and later_id != row_id
    writer.close(timeout_s=5)
    assert sorted(ingestion_messages(broker)) == sorted([[row_id], [later_id]])


def test_a_web_that_stops_enqueues_the_requests_it_answered_last(serve_app, broker, monkeypatch):
    # Given a web whose writer holds stored requests back for a minute
    monkeypatch.setattr(facebook_writer, "ENQUEUE_WITHIN_S", 60.0)
    body = bodies(1)[0]
    with serve_app() as client:
        # When Facebook's request is answered and the web stops right after
        assert client.post("/facebook", content=body, headers=sign(body)).status_code == 200
        assert ingestion_messages(broker) == []
    # Then the request was enqueued as it stopped, not left for the sweeper
    [stored] = WebhookRequest.select()
    assert ingestion_messages(broker) == [[stored.id]]
