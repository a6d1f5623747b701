"""Reading conversations and messages for the API: lookups, lists, unread counts."""

from __future__ import annotations

from typing import Any

from airy_actors import outbox
from airy_actors.db import write_transaction
from airy_actors.errors import NotFound
from airy_actors.models import Channel, Contact, Conversation, Message
from airy_actors.pagination import paginate
from airy_actors.representations import conversation_json, message_json


def get_conversation(conversation_id: str) -> Conversation:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return conversation


def get_message(message_id: str) -> Message:
    message = Message.get_or_none(Message.id == message_id)
    if message is None:
        raise NotFound(f"message {message_id} does not exist")
    return message


def list_conversations(
    *, cursor: str | None, page_size: int, channel_id: str | None, display_name: str | None
) -> dict[str, Any]:
    """Conversations, newest activity first, optionally filtered by channel and contact name."""
    query = Conversation.select(Conversation, Channel, Contact).join(Channel).switch(Conversation).join(Contact)
    if channel_id is not None:
        query = query.where(Conversation.channel == channel_id)
    if display_name is not None:
        query = query.where(Contact.display_name.contains(display_name))
    page = paginate(
        query,
        sort=Conversation.last_message_at,
        tiebreak=Conversation.id,
        cursor=cursor,
        page_size=page_size,
        total=Conversation.select().count(),
    )
    last_ids = [c.last_message_id for c in page.items if c.last_message_id]
    last = {m.id: m for m in Message.select().where(Message.id.in_(last_ids))} if last_ids else {}
    data = [conversation_json(c, c.channel, c.contact, last.get(c.last_message_id)) for c in page.items]
    return {"data": data, "response_metadata": page.response_metadata()}


def conversation_info(conversation_id: str) -> dict[str, Any]:
    conversation = get_conversation(conversation_id)
    last = Message.get_or_none(Message.id == conversation.last_message_id) if conversation.last_message_id else None
    return conversation_json(conversation, conversation.channel, conversation.contact, last)


def mark_conversation_read(conversation_id: str) -> None:
    """Resets the unread count; the contact's next message counts from one again.

    When the count changes, records ``conversation.updated`` in the outbox in the same transaction.
    """
    with write_transaction():
        conversation = get_conversation(conversation_id)
        changed = (
            Conversation.update(unread_message_count=0)
            .where((Conversation.id == conversation_id) & (Conversation.unread_message_count != 0))
            .execute()
        )
        if changed:
            outbox.conversation_updated(conversation)


def list_messages(conversation_id: str, *, cursor: str | None, page_size: int) -> dict[str, Any]:
    """A conversation's messages, newest first."""
    get_conversation(conversation_id)
    query = Message.select().where(Message.conversation == conversation_id)
    page = paginate(
        query, sort=Message.sent_at, tiebreak=Message.id, cursor=cursor, page_size=page_size, total=query.count()
    )
    return {"data": [message_json(m) for m in page.items], "response_metadata": page.response_metadata()}


def message_info(message_id: str) -> dict[str, Any]:
    return message_json(get_message(message_id))
