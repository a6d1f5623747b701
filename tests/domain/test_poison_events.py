"""An event that cannot be applied fails alone, is retried a bounded number of times, then is listed as failed."""

from __future__ import annotations

import pytest

from airy_actors import event_effects, event_failures
from airy_actors.ingestion import ingest_webhook_request, ingest_webhook_requests, retry_failed_event
from airy_actors.models import Channel, FailedEvent, Message, WebhookRequest
from tests.support import APP_ID, entry, reaction, receipt, store_webhook_request, text_message, webhook_body

PAGE = "1001"
PSID = "2001"


@pytest.fixture
def channel(any_db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def stored_texts() -> list[str]:
    return sorted(message.content["message"]["text"] for message in Message.select())


def poison_receipt() -> dict:
    # A read watermark no timestamp column can hold, as a hostile or broken sender could sign it.
    return receipt(PAGE, PSID, "read", watermark=10**30)


def test_an_event_that_cannot_be_applied_takes_no_other_event_of_its_request_down(channel):
    # Given a request: a message, an event that cannot be applied, another message
    before, after = text_message(PAGE, PSID, "m_1", "before"), text_message(PAGE, PSID, "m_2", "after")
    body = webhook_body(entry(PAGE, before, poison_receipt(), after))
    request_id, _ = store_webhook_request(body)
    # When it is ingested
    [result] = ingest_webhook_requests([request_id], app_id=APP_ID)
    # Then both messages are stored, the request is processed, and the bad event alone is recorded
    assert stored_texts() == ["after", "before"]
    assert WebhookRequest.get_by_id(request_id).processed_at is not None
    [failure] = FailedEvent.select()
    assert (failure.webhook_request_id, failure.event_index, failure.kind) == (request_id, 1, "read")
    assert result.failed_event_ids == [failure.id]
    assert failure.error


def test_a_poison_event_in_a_batch_fails_no_other_request(channel):
    # Given a conversation, and two requests ingested together, the first carrying a poison event
    opening, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_0", "opening"))))
    ingest_webhook_request(opening, app_id=APP_ID)
    first, _ = store_webhook_request(webhook_body(entry(PAGE, poison_receipt())))
    second, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_3", "neighbour"))))
    # When they are ingested in one transaction
    ingest_webhook_requests([first, second], app_id=APP_ID)
    # Then the neighbour's message is there, and only the poison event is recorded
    assert stored_texts() == ["neighbour", "opening"]
    assert [row.webhook_request_id for row in FailedEvent.select()] == [first]


def test_a_poison_event_is_retried_at_most_ten_times_in_all_then_failed(channel, monkeypatch):
    # Given a message, and a reaction to it whose application fails every time (a bug, as far as we know)
    opening, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_0", "opening"))))
    ingest_webhook_request(opening, app_id=APP_ID)

    def broken(event, target):
        raise RuntimeError("a bug nobody has found yet")

    monkeypatch.setattr(event_effects, "_apply_reaction", broken)
    request_id, _ = store_webhook_request(webhook_body(entry(PAGE, reaction(PAGE, PSID, "m_0"))))
    ingest_webhook_request(request_id, app_id=APP_ID)
    [failure] = FailedEvent.select()
    assert (failure.kind, failure.status, failure.attempts) == ("reaction", "retrying", 1)
    # When every retry comes due, however often the actor or the sweeper asks
    for _ in range(30):
        FailedEvent.update(next_attempt_at=0).execute()
        assert retry_failed_event(failure.id, app_id=APP_ID) is None
    # Then it was tried ten times in all, and is failed for good, with its reason
    failure = FailedEvent.get_by_id(failure.id)
    assert (failure.attempts, failure.status) == (event_failures.MAX_ATTEMPTS, "failed")
    assert "a bug nobody has found yet" in failure.error
    assert event_failures.stale() == []
    listed = event_failures.list_failed(cursor=None, page_size=20)
    assert [item["id"] for item in listed["data"]] == [failure.id]
    assert set(listed["data"][0]) == {"id", "webhook_request_id", "page_id", "kind", "error", "attempts", "received_at"}


def test_a_value_no_column_holds_fails_its_event_at_once_without_retries(channel):
    # Given a read receipt whose watermark no timestamp column can hold
    request_id, _ = store_webhook_request(webhook_body(entry(PAGE, poison_receipt())))
    # When it is ingested
    [result] = ingest_webhook_requests([request_id], app_id=APP_ID)
    # Then it is failed at once, saying why, and never retried
    [failure] = FailedEvent.select()
    assert (failure.status, failure.attempts, failure.kind) == ("failed", 1, "read")
    assert "cannot be stored" in failure.error
    assert retry_failed_event(failure.id, app_id=APP_ID) is None
    assert FailedEvent.get_by_id(failure.id).attempts == 1


def test_an_event_whose_target_never_arrived_is_failed_and_applies_once_retried(channel):
    # Given a reaction to a message that is not stored, already deferred as often as deferrals go
    request_id, _ = store_webhook_request(webhook_body(entry(PAGE, reaction(PAGE, PSID, "m_late", emoji="❤"))))
    WebhookRequest.update(generation=10).where(WebhookRequest.id == request_id).execute()
    ingest_webhook_request(request_id, app_id=APP_ID)
    [failure] = FailedEvent.select()
    assert failure.status == "failed" and "never arrived" in failure.error
    # When the message arrives at last and an operator retries the event
    late, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_late", "late"))))
    ingest_webhook_request(late, app_id=APP_ID)
    event_failures.retry(failure.id)
    result = retry_failed_event(failure.id, app_id=APP_ID)
    # Then the reaction is applied and the event leaves the list
    assert result is not None and result.events_applied == 1
    assert Message.get(Message.source_message_id == "m_late").metadata["reaction"]["emoji"] == "❤"
    assert FailedEvent.select().count() == 0


def test_an_unreadable_request_is_failed_at_once_and_never_retried(channel):
    # Given a signed body nested deeper than any parser goes
    deep = b'{"object":"page","entry":[' + b"[" * 5000 + b"]" * 5000 + b"]}"
    request_id, _ = store_webhook_request(deep)
    # When it is ingested
    ingest_webhook_request(request_id, app_id=APP_ID)
    # Then it is processed, and listed as one failed request, not retried
    [failure] = FailedEvent.select()
    assert (failure.kind, failure.status, failure.event_index) == ("request", "failed", -1)
    assert WebhookRequest.get_by_id(request_id).processed_at is not None
