"""Failed events over HTTP, with a real worker: a poison event ends failed, listed, and can be tried again."""

from __future__ import annotations

import pytest

from airy_actors import event_effects, event_failures
from airy_actors.models import Channel, FailedEvent, Message
from tests.support import entry, reaction, sign, text_message, wait_until, webhook_body

PAGE = "1001"
PSID = "2001"


@pytest.fixture
def channel(db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def post_webhook(api, body: bytes):
    return api.post("/facebook", content=body, headers=sign(body))


def test_a_poison_event_ends_failed_and_listed_while_its_neighbours_are_stored(api, worker, channel, monkeypatch):
    # Given retries that come quickly
    monkeypatch.setattr(event_failures, "MIN_BACKOFF_MS", 10)
    monkeypatch.setattr(event_failures, "MAX_BACKOFF_MS", 20)
    # And reactions whose application fails every time (a bug, as far as anyone knows yet)
    def broken(event, target):
        raise RuntimeError("a bug nobody has found yet")

    monkeypatch.setattr(event_effects, "_apply_reaction", broken)
    # When Facebook delivers a message, then a batch with a reaction to it beside another message
    assert post_webhook(api, webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_1", "first")))).status_code == 200
    wait_until(lambda: Message.select().count() == 1, timeout=10)
    poison = reaction(PAGE, PSID, "m_1")
    body = webhook_body(entry(PAGE, poison, text_message(PAGE, PSID, "m_2", "second", timestamp=1_700_000_000_500)))
    assert post_webhook(api, body).status_code == 200
    # Then the message is stored, and the poison event ends failed after ten attempts, listed with its reason
    wait_until(lambda: Message.select().count() == 2, timeout=10)
    wait_until(lambda: FailedEvent.select().where(FailedEvent.status == "failed").count() == 1, timeout=30)
    listed = api.post("/events.failed", json={})
    assert listed.status_code == 200
    [item] = listed.json()["data"]
    assert (item["page_id"], item["kind"], item["attempts"]) == (PAGE, "reaction", event_failures.MAX_ATTEMPTS)
    assert item["error"] and item["received_at"].endswith("Z")
    assert listed.json()["response_metadata"]["total"] == 1
    # And the conversations still list
    assert api.post("/conversations.list", json={}).status_code == 200
    # When it is retried, it is tried once more and is failed again, not looping
    before = FailedEvent.get_by_id(item["id"]).updated_at
    assert api.post("/events.retry", json={"id": item["id"]}).status_code == 202

    def tried_again() -> bool:
        row = FailedEvent.get_by_id(item["id"])
        return row.status == "failed" and row.updated_at > before

    wait_until(tried_again, timeout=10)
    assert FailedEvent.get_by_id(item["id"]).attempts == event_failures.MAX_ATTEMPTS


def test_retrying_an_unknown_event_is_404_and_a_bad_page_size_is_400(api, channel):
    assert api.post("/events.retry", json={"id": "no-such-event"}).status_code == 404
    assert api.post("/events.retry", json={}).status_code == 400
    assert api.post("/events.failed", json={"page_size": 0}).status_code == 400
