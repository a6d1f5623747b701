"""Contacts, conversations and messages: the writes that ingestion and sending share."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from peewee import Case

from airy_actors import outbox
from airy_actors.db import database, write_transaction
from airy_actors.models import Channel, Contact, Conversation, Message, stable_id
from airy_actors.timestamps import now_ms


@dataclass
class ConversationRef:
    """A conversation, and whether this call created it and its contact."""

    conversation: Conversation
    created: bool

    @property
    def contact(self) -> Contact:
        """The conversation's contact, read on first use (ingesting a known contact's message needs none)."""
        return self.conversation.contact


def ensure_conversation(channel: Channel, psid: str) -> ConversationRef:
    """Finds or creates the contact ``psid`` on ``channel`` and its conversation.

    Ids are derived from the pair, so two workers racing on a contact's first two messages create one.
    """
    contact_id = stable_id("contact", channel.id, psid)
    conversation_id = stable_id("conversation", channel.id, psid)
    # Most messages come from known contacts: one query.
    known = Conversation.get_or_none(Conversation.id == conversation_id)
    if known is not None:
        return ConversationRef(known, False)
    created = (
        Contact.insert(id=contact_id, channel=channel.id, source_contact_id=psid)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
        == 1
    )
    if created:
        Conversation.insert(id=conversation_id, channel=channel.id, contact=contact_id).on_conflict_ignore().execute()
    return ConversationRef(Conversation.get_by_id(conversation_id), created)


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

    Keeps the conversation's last message, unread count and messaging window in step, and records
    ``message.created`` in the outbox, all in one transaction (the caller's, when it has one).

    Returns:
      Whether the message is new.
    """
    row = {
        "id": message_id,
        "conversation": conversation.id,
        "channel": conversation.channel_id,
        "source_message_id": source_message_id,
        "content": content,
        "delivery_state": delivery_state,
        "from_contact": from_contact,
        "sender_id": sender_id,
        "sent_at": sent_at,
        "metadata": metadata or {},
    }
    with _transaction():
        inserted = Message.insert(row).on_conflict_ignore().as_rowcount().execute() == 1
        if not inserted:
            return False
        changes = _conversation_changes(message_id, sent_at, from_contact)
        Conversation.update(changes).where(Conversation.id == conversation.id).execute()
        # After the conversation's row lock: events of one conversation get outbox ids in commit order.
        outbox.message_created(Message(**row))
        return True


def _conversation_changes(message_id: str, sent_at: int, from_contact: bool) -> dict[Any, Any]:
    """The conversation's last message, unread count and messaging window after a new message, as one UPDATE.

    Each value reads the row as it was before the UPDATE (SQL's rule, on PostgreSQL and SQLite alike).
    """
    newest = Conversation.last_message_at <= sent_at
    changes = {
        Conversation.last_message_id: Case(None, [(newest, message_id)], Conversation.last_message_id),
        Conversation.last_message_at: Case(None, [(newest, sent_at)], Conversation.last_message_at),
    }
    if from_contact:
        window = Conversation.last_contact_message_at
        changes[Conversation.unread_message_count] = Conversation.unread_message_count + 1
        changes[window] = Case(None, [(window.is_null() | (window < sent_at), sent_at)], window)
    return changes


def find_message(channel: Channel, source_message_id: str) -> Message | None:
    """The message that Facebook knows as ``source_message_id`` on ``channel``, if stored."""
    return Message.get_or_none((Message.channel == channel.id) & (Message.source_message_id == source_message_id))


def save_metadata(message: Message, metadata: dict[str, Any], **fields: Any) -> None:
    """Stores ``message``'s new metadata (and other ``fields``), stamping ``updated_at``.

    Records ``message.updated`` in the outbox in the same transaction (the caller's, when it has one).
    """
    message.metadata = metadata
    for name, value in fields.items():
        setattr(message, name, value)
    message.updated_at = now_ms()
    with _transaction():
        message.save()
        outbox.message_updated(message)


def _transaction() -> contextlib.AbstractContextManager[object]:
    """The caller's transaction when there is one (no savepoint: these run per event); else a new one."""
    return contextlib.nullcontext() if database.in_transaction() else write_transaction()


SEND_BOOKKEEPING = frozenset(
    {"messaging_type", "message_tag", "send_state", "send_attempts", "send_attempt_at", "send_due_at"}
)


def update_send_bookkeeping(condition: Any, **columns: Any) -> int:
    """Changes only the send bookkeeping of the outbound messages that ``condition`` selects.

    These columns (see :data:`SEND_BOOKKEEPING`) are how airy_actors.sending keeps a send exactly-once; no API
    representation shows them, so a change here is not a ``message.updated``. Every visible change goes
    through :func:`save_metadata`.

    Parameters:
      condition: a Peewee expression over Message, e.g. ``(Message.id == x) & (Message.send_state == "queued")``,
        so that a change can be a compare-and-set.
      columns: the new values (values may be expressions, such as ``Message.send_attempts + 1``).

    Returns:
      How many messages changed.
    """
    unknown = set(columns) - SEND_BOOKKEEPING
    if unknown:
        raise ValueError(f"not send bookkeeping: {sorted(unknown)}")
    return Message.update(**columns).where(condition & (Message.from_contact == False)).execute()  # noqa: E712
