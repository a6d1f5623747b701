"""Several stored webhook requests applied in one transaction, on PostgreSQL and SQLite: the same outcome as
applying them one by one, with the contact messages stored together."""

from __future__ import annotations

import pytest

from airy_actors import ingestion, integrations
from airy_actors.ingestion import ingest_webhook_requests
from airy_actors.models import Channel, Contact, Conversation, Message, WebhookRequest, stable_id
from airy_actors.models.integrations import OutboxEvent
from airy_actors.webhook_requests import store_webhook_requests
from tests.support import APP_ID, echo, entry, postback, reaction, store_webhook_request, text_message, webhook_body

PAGE = "1001"
ALICE, BOB = "2001", "2002"
T = 1_700_000_000_000


@pytest.fixture
def channel(any_db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def request(*events: dict) -> bytes:
    return webhook_body(entry(PAGE, *events))


def ingest_together(*bodies: bytes) -> list[ingestion.IngestionResult]:
    ids = [row_id for row_id, _ in store_webhook_requests(list(bodies))]
    return ingest_webhook_requests(ids, app_id=APP_ID)


def conversation_of(psid: str) -> Conversation:
    return Conversation.get(Conversation.contact == Contact.get(Contact.source_contact_id == psid))


def mids() -> list[str]:
    return sorted(m.source_message_id for m in Message.select())


def test_duplicates_within_and_across_requests_make_one_message_each(channel):
    # Given a message stored before, redelivered in a batch where two requests also share a message
    ingest_together(request(text_message(PAGE, ALICE, "m_0", "before", timestamp=T)))
    results = ingest_together(
        request(text_message(PAGE, ALICE, "m_1", "a", timestamp=T + 1), text_message(PAGE, BOB, "m_2", "b", T + 2)),
        request(text_message(PAGE, BOB, "m_2", "b", T + 2), text_message(PAGE, ALICE, "m_0", "before", timestamp=T)),
        request(text_message(PAGE, ALICE, "m_3", "c", timestamp=T + 3)),
    )
    # Then each mid is one message, counted once as new and once as unread
    assert mids() == ["m_0", "m_1", "m_2", "m_3"]
    assert [r.messages_created for r in results] == [2, 0, 1]
    assert conversation_of(ALICE).unread_message_count == 3
    assert conversation_of(BOB).unread_message_count == 1


def test_the_same_request_twice_in_a_batch_or_again_later_changes_nothing(channel):
    row_id, _ = store_webhook_request(request(text_message(PAGE, ALICE, "m_1", "a")))
    first, again = ingest_webhook_requests([row_id, row_id], app_id=APP_ID)
    assert (first.messages_created, again.messages_created) == (1, 1)  # one request, one result, reported twice
    [later] = ingest_webhook_requests([row_id], app_id=APP_ID)
    assert later.already_processed
    assert mids() == ["m_1"] and conversation_of(ALICE).unread_message_count == 1


def test_out_of_order_messages_leave_the_newest_as_the_last_message(channel):
    # When one batch brings a conversation's messages out of order, with two sharing the newest time
    ingest_together(
        request(text_message(PAGE, ALICE, "m_late", "3", timestamp=T + 3_000)),
        request(text_message(PAGE, ALICE, "m_early", "1", timestamp=T + 1_000)),
        request(text_message(PAGE, ALICE, "m_tie", "3 too", timestamp=T + 3_000)),
        request(text_message(PAGE, ALICE, "m_mid", "2", timestamp=T + 2_000)),
    )
    conversation = conversation_of(ALICE)
    # Then the last message is the newest, the later one of a tie (as when they arrive one by one)
    assert conversation.last_message_id == stable_id("message", channel.id, "m_tie")
    assert (conversation.last_message_at, conversation.last_contact_message_at) == (T + 3_000, T + 3_000)
    assert conversation.unread_message_count == 4
    # And a later batch of older messages does not move it back
    ingest_together(request(text_message(PAGE, ALICE, "m_old", "0", timestamp=T)))
    conversation = conversation_of(ALICE)
    assert conversation.last_message_id == stable_id("message", channel.id, "m_tie")
    assert (conversation.last_contact_message_at, conversation.unread_message_count) == (T + 3_000, 5)


def test_a_new_contacts_first_message_creates_its_conversation_and_asks_for_its_profile_once(channel):
    ingest_together(request(text_message(PAGE, ALICE, "m_0", "known")))
    # When a batch brings a new contact's first messages in two requests, among a known contact's
    results = ingest_together(
        request(text_message(PAGE, ALICE, "m_1", "a"), text_message(PAGE, BOB, "m_2", "first", T + 5)),
        request(text_message(PAGE, BOB, "m_3", "second", T + 6)),
    )
    # Then the contact and its conversation exist once, and its profile is asked for by the first request only
    bob = Contact.get(Contact.source_contact_id == BOB)
    assert [r.contacts_created for r in results] == [[bob.id], []]
    assert bob.profile_state == "pending"
    conversation = conversation_of(BOB)
    assert conversation.id == stable_id("conversation", channel.id, BOB)
    assert (conversation.unread_message_count, conversation.last_message_at) == (2, T + 6)
    assert Conversation.select().count() == 2


def test_subscribers_hear_of_each_new_message_once_in_the_order_received(channel):
    integrations.subscribe("http://127.0.0.1:9/hook", headers=None, events=None, signature_key=None)
    order = [(ALICE, "m_1"), (BOB, "m_2"), (ALICE, "m_3"), (BOB, "m_4")]
    bodies = [request(text_message(PAGE, psid, mid, mid, timestamp=T + n)) for n, (psid, mid) in enumerate(order)]
    ingest_together(bodies[0], bodies[1], bodies[0], bodies[2], bodies[3])
    ingest_together(request(text_message(PAGE, ALICE, "m_1", "m_1", timestamp=T)))  # a redelivery, later
    created = OutboxEvent.select().where(OutboxEvent.type == "message.created").order_by(OutboxEvent.id)
    assert [e.payload["message"]["content"]["message"]["mid"] for e in created] == ["m_1", "m_2", "m_3", "m_4"]
    assert [e.ordering_key for e in created] == [stable_id("conversation", channel.id, psid) for psid, _ in order]


def test_other_events_see_the_contact_messages_received_before_them(channel):
    # When a batch brings a message, a reaction to it, an echo from the Page inbox, and a reaction to a
    # message that comes only after it
    results = ingest_together(
        request(text_message(PAGE, ALICE, "m_1", "hello", timestamp=T)),
        request(
            reaction(PAGE, ALICE, "m_1", "react"),
            echo(PAGE, ALICE, "m_inbox", "typed by a human", app_id=None, timestamp=T + 10),
            reaction(PAGE, ALICE, "m_2", "react"),
            postback(PAGE, ALICE, "m_2", "GET_STARTED", "Get started", timestamp=T + 5),
        ),
    )
    # Then events apply in the order received: the first reaction is applied, the second waits for its message
    assert Message.get(Message.source_message_id == "m_1").metadata["reaction"]["emoji"] == "\u2764\ufe0f"
    assert Message.get(Message.source_message_id == "m_2").metadata == {
        "postback": {"payload": "GET_STARTED", "title": "Get started"}
    }
    assert results[1].deferred_event_id is not None
    conversation = conversation_of(ALICE)
    assert conversation.unread_message_count == 2  # the echo is the page's own
    assert conversation.last_message_id == stable_id("message", channel.id, "m_inbox")
    assert WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() == 2


def test_without_returning_every_event_is_applied_one_by_one_with_the_same_outcome(channel, monkeypatch):
    # Given a database that can't say which rows an INSERT stored (SQLite before 3.35)
    monkeypatch.setattr(ingestion, "supports_returning", lambda: False)
    results = ingest_together(
        request(text_message(PAGE, ALICE, "m_2", "b", timestamp=T + 2), text_message(PAGE, BOB, "m_1", "a", T + 1)),
        request(text_message(PAGE, ALICE, "m_2", "b", timestamp=T + 2), text_message(PAGE, ALICE, "m_0", "c", T)),
    )
    assert [r.messages_created for r in results] == [2, 1]
    assert len(results[0].contacts_created) == 2
    alice = conversation_of(ALICE)
    assert (alice.unread_message_count, alice.last_message_id) == (2, stable_id("message", channel.id, "m_2"))
