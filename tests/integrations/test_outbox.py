"""The outbox, on PostgreSQL and SQLite: an event exists exactly when its change committed, and reaches the
subscriptions that existed before it."""

from __future__ import annotations

import pytest

from airy_actors import integrations, outbox, reading
from airy_actors.conversations import ensure_conversation, insert_message, save_metadata
from airy_actors.db import write_transaction
from airy_actors.models import Channel, Message
from airy_actors.models.integrations import OutboxEvent, WebhookDelivery
from airy_actors.profiles import apply_profile
from airy_actors.representations import channel_json

PSID = "2001"


@pytest.fixture
def channel(any_db) -> Channel:
    return Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")


def subscribe(**fields) -> dict:
    return integrations.subscribe(
        fields.pop("url", "http://127.0.0.1:9/hook"),
        headers=fields.pop("headers", None),
        events=fields.pop("events", None),
        signature_key=fields.pop("signature_key", None),
    )


def new_message(channel: Channel, mid: str, text: str = "hello", at: int = 1_700_000_000_000) -> bool:
    conversation = ensure_conversation(channel, PSID).conversation
    return insert_message(
        conversation,
        message_id=f"id-{mid}",
        source_message_id=mid,
        content={"message": {"mid": mid, "text": text}},
        from_contact=True,
        sender_id=PSID,
        sent_at=at,
        delivery_state="delivered",
    )


def events() -> list[OutboxEvent]:
    return list(OutboxEvent.select().order_by(OutboxEvent.id))


def deliveries(subscription: dict) -> list[WebhookDelivery]:
    query = WebhookDelivery.select().where(WebhookDelivery.subscription == subscription["id"])
    return list(query.order_by(WebhookDelivery.event_id))


def test_a_committed_message_writes_one_event_with_its_api_representation(channel):
    subscribe()
    with write_transaction():
        assert new_message(channel, "m_1")
        assert not new_message(channel, "m_1")  # a redelivery is not a second message, nor a second event
    [event] = events()
    message = Message.get()
    assert (event.type, event.ordering_key) == ("message.created", message.conversation_id)
    assert event.payload == {
        "conversation_id": message.conversation_id,
        "channel_id": channel.id,
        "message": reading.message_info(message.id),
    }


def test_a_rolled_back_transaction_emits_nothing(channel):
    subscription = subscribe()
    # Given a transaction that stores a message and then fails
    with pytest.raises(RuntimeError), write_transaction():
        assert new_message(channel, "m_1")
        raise RuntimeError("the rest of the work failed")
    # Then neither the message nor its event exists, and a drain delivers nothing
    assert Message.select().count() == 0
    assert events() == []
    assert integrations.drain_outbox() == ([], False)
    assert deliveries(subscription) == []


def test_an_update_writes_message_updated_with_the_new_state(channel):
    subscribe()
    new_message(channel, "m_1")
    message = Message.get()
    save_metadata(message, {"reaction": {"emoji": "\u2764\ufe0f", "sent_at": "2023-11-14T22:13:21.000Z"}})
    created, updated = events()
    assert (created.type, updated.type) == ("message.created", "message.updated")
    assert updated.payload["message"]["metadata"]["reaction"]["emoji"] == "\u2764\ufe0f"
    assert created.payload["message"]["metadata"] == {}


def test_reading_a_conversation_and_a_new_profile_write_conversation_updated(channel):
    subscribe()
    new_message(channel, "m_1")
    conversation = ensure_conversation(channel, PSID)
    reading.mark_conversation_read(conversation.conversation.id)
    reading.mark_conversation_read(conversation.conversation.id)  # nothing changes: no event
    apply_profile(conversation.contact.id, {"first_name": "Grace", "last_name": "Hopper", "profile_pic": "p.jpg"})
    _, read, profiled = events()
    assert (read.type, read.payload["unread_message_count"]) == ("conversation.updated", 0)
    assert profiled.payload["contact"] == {"display_name": "Grace Hopper", "avatar_url": "p.jpg"}
    assert profiled.payload == reading.conversation_info(conversation.conversation.id)


def test_channel_updated_carries_the_channel_without_its_token(channel):
    subscribe()
    with write_transaction():
        outbox.channel_updated(channel)
    [event] = events()
    assert (event.type, event.ordering_key, event.payload) == ("channel.updated", channel.id, channel_json(channel))
    assert "PAGE-TOKEN" not in str(event.payload)


def test_nothing_is_written_without_a_subscription_that_wants_the_type(channel):
    new_message(channel, "m_1")
    assert events() == []
    subscribe(events=["message.updated"])
    new_message(channel, "m_2")
    assert events() == []
    save_metadata(Message.get(Message.source_message_id == "m_2"), {"read_at": "2023-11-14T22:13:21.000Z"})
    assert [event.type for event in events()] == ["message.updated"]


def test_a_subscription_never_receives_events_written_before_it_existed(channel):
    early = subscribe()
    new_message(channel, "m_1")
    late = subscribe()
    new_message(channel, "m_2", at=1_700_000_000_001)
    lanes, more = integrations.drain_outbox()
    first, second = events()
    assert [d.event_id for d in deliveries(early)] == [first.id, second.id]
    assert [d.event_id for d in deliveries(late)] == [second.id]
    assert not more and len(lanes) == 2


def test_draining_twice_delivers_once_and_respects_event_filters(channel):
    everything = subscribe()
    only_updates = subscribe(events=["message.updated"])
    new_message(channel, "m_1")
    save_metadata(Message.get(), {"read_at": "2023-11-14T22:13:21.000Z"})
    integrations.drain_outbox()
    OutboxEvent.update(dispatched_at=None).execute()  # as if a second drain had raced the first
    integrations.drain_outbox()
    assert [d.type for d in deliveries(everything)] == ["message.created", "message.updated"]
    assert [d.type for d in deliveries(only_updates)] == ["message.updated"]
