"""The batch ingestion actor, on PostgreSQL and SQLite: a request that can't be applied holds up none of the
others stored with it."""

from __future__ import annotations

import json

import pytest

from airy_actors.models import Channel, Message, WebhookRequest
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


def test_a_poisoned_request_is_retried_alone_and_the_rest_of_its_batch_is_stored(channel, monkeypatch):
    # Given a batch of three requests whose second always fails
    bodies = [webhook_body(entry(PAGE, text_message(PAGE, f"200{n}", f"m_{n}", "hi"))) for n in range(2)]
    first, third = (row_id for row_id, _ in store_webhook_requests(bodies))
    second = poisoned_request()
    retried_alone: list[int] = []
    monkeypatch.setattr(ingestion_actors.ingest_webhook_request, "send", retried_alone.append)

    # When the batch actor runs
    ingestion_actors.ingest_webhook_requests([first, second, third])

    # Then the two good requests are stored and processed, and the poisoned one is handed to its own actor
    assert sorted(m.source_message_id for m in Message.select()) == ["m_0", "m_1"]
    unprocessed = WebhookRequest.select(WebhookRequest.id).where(WebhookRequest.processed_at.is_null())
    assert [row.id for row in unprocessed] == [second]
    assert retried_alone == [second]
