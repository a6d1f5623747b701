"""The batch ingestion actor, on PostgreSQL and SQLite: a request that can't be applied holds up none of the
others stored with it."""

from __future__ import annotations

import json

import pytest

from airy_actors.models import Channel, FailedEvent, Message, WebhookRequest
from airy_actors.webhook_requests import store_webhook_requests
from tests.support import entry, text_message, webhook_body
from workers import ingestion as ingestion_actors

PAGE = "1001"


@pytest.fixture
def channel(any_db, broker) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def poisoned_request() -> int:
    """A stored request that fails every time it is applied (a deferred event of a kind no code knows)."""
    body = json.dumps({"object": "airy.deferred", "events": [{"type": "NoSuchEvent"}]})
    return WebhookRequest.create(body=body, digest="poison", generation=1).id


def test_a_request_that_cannot_be_read_fails_alone_and_the_rest_of_its_batch_is_stored(channel, monkeypatch):
    # Given a batch of three requests whose second can never be read
    bodies = [webhook_body(entry(PAGE, text_message(PAGE, f"200{n}", f"m_{n}", "hi"))) for n in range(2)]
    first, third = (row_id for row_id, _ in store_webhook_requests(bodies))
    second = poisoned_request()
    retried_alone: list[tuple] = []
    monkeypatch.setattr(ingestion_actors.ingest_webhook_request, "send", lambda *args: retried_alone.append(args))

    # When the batch actor runs
    ingestion_actors.ingest_webhook_requests([first, second, third])

    # Then the two good requests are stored, all three are processed, and the unreadable one is failed, visibly,
    # without a retry
    assert sorted(m.source_message_id for m in Message.select()) == ["m_0", "m_1"]
    assert WebhookRequest.select().where(WebhookRequest.processed_at.is_null()).count() == 0
    [failure] = FailedEvent.select()
    assert (failure.webhook_request_id, failure.kind, failure.status) == (second, "request", "failed")
    assert retried_alone == []
