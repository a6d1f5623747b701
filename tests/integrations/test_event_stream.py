"""``GET /events.stream`` end to end: Facebook's webhook in, a real worker between, SSE clients over real HTTP."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import peewee
import pytest
from prometheus_client import REGISTRY

from airy_actors import stream_listeners
from airy_actors.config import get_settings
from airy_actors.db import write_transaction
from airy_actors.models import WebhookRequest
from airy_actors.models.integrations import OutboxEvent
from airy_actors.timestamps import now_ms
from api.app import create_app
from tests.integrations.calls import PAGE, from_facebook
from tests.integrations.sse_client import SseClient, StalledReader
from tests.server.raw_http import GuardedServer
from tests.support import text_message, wait_until

PSID = "2001"
SLOW_DISCONNECTS = "airy_event_stream_slow_disconnects_total"
CLIENTS = "airy_event_stream_clients"


@pytest.fixture(autouse=True)
def fresh_listener_record() -> None:
    # Each test empties the database: this process must write the listener record again.
    stream_listeners.forget_recording()


@pytest.fixture
def streams() -> Iterator[Callable[..., SseClient]]:
    """Opens stream clients on demand; all are closed after the test, before its server stops."""
    opened: list[SseClient] = []

    def open_stream(api: httpx.Client, **options: str | None) -> SseClient:
        client = SseClient(str(api.base_url), **options).start()
        opened.append(client)
        return client

    yield open_stream
    for client in opened:
        client.close()


def processed(count: int) -> bool:
    return WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() >= count


def outbox_ids(after: int = 0) -> list[int]:
    """Every outbox event past ``after``, in the stream's order."""
    rows = list(OutboxEvent.select(OutboxEvent.tx, OutboxEvent.id).order_by(OutboxEvent.tx, OutboxEvent.id).tuples())
    if after:
        start = rows.index(next(row for row in rows if row[1] == after))
        rows = rows[start + 1 :]
    return [event_id for _, event_id in rows]


def write_events(count: int, size: int) -> None:
    """Writes ``count`` outbox events of about ``size`` bytes each in one transaction, as the outbox does."""
    rows = [
        {
            "type": "channel.updated",
            "ordering_key": "bulk",
            "payload": {"blob": "x" * size},
            "timestamp": now_ms(),
            "tx": peewee.SQL("pg_current_xact_id()::text::bigint"),
        }
        for _ in range(count)
    ]
    with write_transaction():
        OutboxEvent.insert_many(rows).execute()


def test_a_connected_client_sees_a_message_from_facebook_as_it_happens(api, worker, channel, streams):
    # Given a client connected to the stream
    client = streams(api)
    assert client.status == 200 and client.content_type.startswith("text/event-stream")
    # When a contact writes to the page
    from_facebook(api, text_message(PAGE, PSID, "m_1", "hello"))
    # Then the client receives message.created, with its outbox id
    wait_until(lambda: client.of_type("message.created"), message="message.created")
    created = client.of_type("message.created")[0]
    document = created.document
    assert sorted(document) == ["payload", "timestamp", "type"] and document["type"] == "message.created"
    message = document["payload"]["message"]
    assert message["content"]["message"]["text"] == "hello"
    assert message == api.post("/messages.info", json={"message_id": message["id"]}).json()
    stored = OutboxEvent.get(OutboxEvent.type == "message.created")
    assert int(created.id) == stored.id
    assert client.ids() == outbox_ids()[: len(client.ids())]


def test_a_client_that_reconnects_gets_exactly_what_it_missed_then_live_events(api, worker, channel, streams):
    # Given a client that received the events of a first message and was then cut
    client = streams(api)
    from_facebook(api, text_message(PAGE, PSID, "m_1", "one", timestamp=1_700_000_000_001))
    wait_until(lambda: client.of_type("message.created"), message="the first message's event")
    client.close()
    last = client.events[-1].id
    # When more messages arrive while it is away
    for number in (2, 3, 4):
        from_facebook(api, text_message(PAGE, PSID, f"m_{number}", f"#{number}", timestamp=1_700_000_000_000 + number))
        wait_until(lambda n=number: processed(n), message=f"request {number} not ingested")
    missed = outbox_ids(after=int(last))
    assert len(missed) >= 3
    # And it reconnects with Last-Event-ID
    again = streams(api, last_event_id=last)
    # Then it receives exactly the missed events, in the stream's order, none twice
    wait_until(lambda: len(again.events) >= len(missed), message="the missed events")
    assert again.ids()[: len(missed)] == missed
    # And then the live ones
    from_facebook(api, text_message(PAGE, PSID, "m_5", "five", timestamp=1_700_000_000_005))
    wait_until(lambda: again.ids() == outbox_ids(after=int(last)) and len(again.ids()) > len(missed), timeout=10)
    assert len(set(client.ids() + again.ids())) == len(client.ids() + again.ids()) == len(outbox_ids())
    texts = [e.document["payload"]["message"]["content"]["message"]["text"] for e in again.of_type("message.created")]
    assert texts == ["#2", "#3", "#4", "five"]


def test_an_unknown_last_event_id_replays_what_the_window_keeps(api, streams):
    write_events(3, 10)
    old = OutboxEvent.select().order_by(OutboxEvent.id).first()
    OutboxEvent.update(timestamp=now_ms() - stream_listeners.STREAM_WINDOW_MS - 1).where(
        OutboxEvent.id == old.id
    ).execute()
    kept = outbox_ids(after=old.id)
    client = streams(api, last_event_id="999999")
    wait_until(lambda: client.ids() == kept, message="the events of the window")
    stale = streams(api, last_event_id=str(old.id))  # older than the window: the same
    wait_until(lambda: stale.ids() == kept, message="the events of the window")


def test_an_idle_stream_gets_heartbeats(serve_app, streams):
    with serve_app(stream_heartbeat_ms=100) as api:
        client = streams(api)
        wait_until(lambda: client.comments.count("heartbeat") >= 3, timeout=3, message="three heartbeats")
        assert client.events == []
        client.close()


def test_a_reader_that_stops_reading_is_disconnected_while_others_keep_receiving(serve_app, streams):
    with serve_app(stream_buffer_events=100) as api:
        # Given a client that reads, and one that asked for the stream and never reads
        connected = REGISTRY.get_sample_value(CLIENTS) or 0
        before = REGISTRY.get_sample_value(SLOW_DISCONNECTS) or 0
        reading = streams(api)
        stalled = StalledReader(str(api.base_url))
        try:
            wait_until(lambda: REGISTRY.get_sample_value(CLIENTS) == connected + 2, message="two clients")
            # When far more flows, batch after batch, than the stalled one's socket and buffer take (12 MB, in
            # events of 20 KB; its socket takes about 3 MB, its buffer 100 events)
            for _ in range(60):
                write_events(10, 20_000)
                time.sleep(0.02)
            # Then the stalled one is disconnected, and counted
            wait_until(lambda: (REGISTRY.get_sample_value(SLOW_DISCONNECTS) or 0) == before + 1, timeout=10)
            assert stalled.is_closed_by_server()
            # While the reading client gets every event
            wait_until(lambda: len(reading.events) >= 600, timeout=15, message="every event")
            assert reading.ids() == outbox_ids() and not reading.ended.is_set()
            assert REGISTRY.get_sample_value(CLIENTS) == connected + 1
        finally:
            stalled.close()
            reading.close()


def test_behind_the_products_server_a_stalled_readers_connection_is_dropped_at_once(db, broker, fake_graph, caplog):
    # The product's protocol lets the stream abort the connection: without it, closing would wait until the
    # stalled reader took what its socket holds, that is for ever.
    server = GuardedServer(create_app(dataclasses.replace(get_settings(), stream_buffer_events=100))).start()
    url = f"http://127.0.0.1:{server.port}"
    reading = SseClient(url).start()
    stalled = StalledReader(url)
    try:
        wait_until(lambda: server.connections == 2, message="two clients")
        for _ in range(60):
            write_events(10, 20_000)
            time.sleep(0.02)
        # Then the stalled client's connection is gone, though it read nothing
        wait_until(lambda: server.connections == 1, timeout=10, message="the stalled connection dropped")
        wait_until(lambda: len(reading.events) >= 600, timeout=15, message="every event")
        assert reading.ids() == outbox_ids()
        # A dropped reader is a disconnected client to the server, not an error of the app
        assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
    finally:
        stalled.close()
        reading.close()
        server.stop()


def test_a_malformed_last_event_id_is_refused(api):
    for value in ("abc", "-1", "1.5", "99999999999999999999999"):
        response = api.get("/events.stream", headers={"Last-Event-ID": value})
        assert response.status_code == 400, value
        assert response.json()["message"].startswith("Last-Event-ID:")


def test_the_stream_needs_the_system_token_when_set(serve_app, streams):
    with serve_app(system_token="s3cret") as api:
        refused = api.get("/events.stream")
        assert refused.status_code == 401 and "message" in refused.json()
        client = streams(api, token="s3cret")
        assert client.status == 200
        client.close()
