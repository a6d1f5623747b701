"""Reading defensively: values that an earlier version could store never make a read answer 500."""

from __future__ import annotations

from airy_actors.conversations import ensure_conversation
from airy_actors.models import Channel, Conversation, Message


def test_lists_answer_with_nan_and_far_timestamps_already_stored(api):
    # Given a conversation whose stored message holds NaN and a time past year 9999
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="TOKEN")
    conversation = ensure_conversation(channel, "2001").conversation
    Message.create(
        id="m-hostile",
        conversation=conversation.id,
        channel=channel.id,
        source_message_id="m_1",
        content={"text": float("nan"), "note": "kept"},
        delivery_state="delivered",
        from_contact=True,
        sender_id="2001",
        sent_at=10**15,
        metadata={},
    )
    Conversation.update(last_message_id="m-hostile", last_message_at=10**15).execute()
    # When integrators read it, Then every read answers, with null for NaN and the nearest showable time
    listed = api.post("/conversations.list", json={})
    assert listed.status_code == 200, listed.text
    info = api.post("/conversations.info", json={"conversation_id": conversation.id})
    assert info.status_code == 200
    messages = api.post("/messages.list", json={"conversation_id": conversation.id})
    assert messages.status_code == 200
    [message] = messages.json()["data"]
    assert message["content"] == {"text": None, "note": "kept"}
    assert message["sent_at"] == "9999-12-31T23:59:59.999Z"
