"""Contacts, conversations and messages: the writes that ingestion and sending share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airy_actors.models import Channel, Contact, Conversation, Message, stable_id
from airy_actors.timestamps import now_ms


@dataclass
class ConversationRef:
    """A conversation together with its contact, and whether this call created them."""

    conversation: Conversation
    contact: Contact
    created: bool


def ensure_conversation(channel: Channel, psid: str) -> ConversationRef:
    """Finds or creates the contact ``psid`` on ``channel`` and its conversation.

    Ids are derived from the pair, so two workers racing on a contact's first two messages create one.
    """
    contact_id = stable_id("contact", channel.id, psid)
    conversation_id = stable_id("conversation", channel.id, psid)
    created = (
        Contact.insert(id=contact_id, channel=channel.id, source_contact_id=psid)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
        == 1
    )
    if created:
        Conversation.insert(id=conversation_id, channel=channel.id, contact=contact_id).on_conflict_ignore().execute()
    contact = Contact.get_by_id(contact_id)
    conversation = Conversation.get_by_id(conversation_id)
    return ConversationRef(conversation, contact, created)


def insert_message(
    conversation: Conversation,
    *,
    message_id: str,
    source_message_id: str | None,
    content: dict[str, Any],
    from_contact: bool,
    sender_id: str,
    sent_at: int,
    delivery_state: str,
    metadata: dict[str, Any] | None = None,
) -> bool:
    """Inserts a message unless one with the same id or ``source_message_id`` exists on its channel.

    Keeps the conversation's last message, unread count and messaging window in step.

    Returns:
      Whether the message is new.
    """
    inserted = (
        Message.insert(
            id=message_id,
            conversation=conversation.id,
            channel=conversation.channel_id,
            source_message_id=source_message_id,
            content=content,
            delivery_state=delivery_state,
            from_contact=from_contact,
            sender_id=sender_id,
            sent_at=sent_at,
            metadata=metadata or {},
        )
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
        == 1
    )
    if not inserted:
        return False
    where = Conversation.id == conversation.id
    Conversation.update(last_message_id=message_id, last_message_at=sent_at).where(
        where & (Conversation.last_message_at <= sent_at)
    ).execute()
    if from_contact:
        Conversation.update(unread_message_count=Conversation.unread_message_count + 1).where(where).execute()
        Conversation.update(last_contact_message_at=sent_at).where(
            where
            & ((Conversation.last_contact_message_at.is_null()) | (Conversation.last_contact_message_at < sent_at))
        ).execute()
    return True


def find_message(channel: Channel, source_message_id: str) -> Message | None:
    """The message that Facebook knows as ``source_message_id`` on ``channel``, if stored."""
    return Message.get_or_none((Message.channel == channel.id) & (Message.source_message_id == source_message_id))


def save_metadata(message: Message, metadata: dict[str, Any], **fields: Any) -> None:
    """Stores ``message``'s new metadata (and other ``fields``), stamping ``updated_at``."""
    message.metadata = metadata
    for name, value in fields.items():
        setattr(message, name, value)
    message.updated_at = now_ms()
    message.save()
