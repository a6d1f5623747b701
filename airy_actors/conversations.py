"""Contacts, conversations and messages: the writes that ingestion and sending share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from peewee import Case

from airy_actors import outbox
from airy_actors.db import database, execute, is_postgres, placeholders, write_transaction
from airy_actors.models import Channel, Contact, Conversation, Message, stable_id
from airy_actors.timestamps import now_ms

T = TypeVar("T")


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


@dataclass(frozen=True)
class ContactMessage:
    """A message that a contact wrote, to be stored by :func:`insert_contact_messages`."""

    channel_id: str
    psid: str
    source_message_id: str
    content: dict[str, Any]
    sent_at: int
    metadata: dict[str, Any]
    contact_id: str = field(init=False)
    conversation_id: str = field(init=False)
    message_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_id", stable_id("contact", self.channel_id, self.psid))
        object.__setattr__(self, "conversation_id", stable_id("conversation", self.channel_id, self.psid))
        object.__setattr__(self, "message_id", stable_id("message", self.channel_id, self.source_message_id))


@dataclass
class StoredContactMessages:
    """What :func:`insert_contact_messages` did: which messages are new, and which contacts it created."""

    new: list[bool]
    contacts_created: set[str]


# Contact messages are most of what a page receives, and the worker's CPU bounds how many a second it stores
# (bench/ingestion.py): building Peewee queries and models took more CPU than the database's own work. So a
# batch of them takes a few plain-SQL statements for all, whatever its size. ``{p}`` is the database's
# placeholder; both engines run the same SQL. Statements carry at most ROWS_PER_STATEMENT rows, well within
# SQLite's limit on parameters.
ROWS_PER_STATEMENT = 500
_LOCK_CONVERSATIONS = "SELECT id FROM conversation WHERE id IN ({ids}) ORDER BY id"
_INSERT_CONTACT_MESSAGES = """
INSERT INTO message (id, conversation_id, channel_id, source_message_id, content, delivery_state, from_contact,
  sender_id, sent_at, metadata, created_at, updated_at)
VALUES {rows}
ON CONFLICT DO NOTHING
RETURNING id
"""
_CONTACT_MESSAGE_ROW = "({p}, {p}, {p}, {p}, {p}, 'delivered', TRUE, {p}, {p}, {p}, {p}, {p})"
# The same bookkeeping as _conversation_changes, for several conversations and several new contact messages
# each: v is (conversation id, its newest new message's id, that message's sent_at, how many are new). The
# columns of a VALUES list are column1, column2, ... on PostgreSQL and SQLite alike.
_UPDATE_CONVERSATIONS = """
UPDATE conversation SET
  last_message_id = CASE WHEN last_message_at <= v.column3 THEN v.column2 ELSE last_message_id END,
  last_message_at = CASE WHEN last_message_at <= v.column3 THEN v.column3 ELSE last_message_at END,
  last_contact_message_at = CASE
    WHEN last_contact_message_at IS NULL OR last_contact_message_at < v.column3 THEN v.column3
    ELSE last_contact_message_at END,
  unread_message_count = unread_message_count + v.column4
FROM (VALUES {rows}) AS v
WHERE conversation.id = v.column1
"""


def insert_contact_messages(messages: Sequence[ContactMessage]) -> StoredContactMessages:
    """Stores contact messages as :func:`ensure_conversation` and :func:`insert_message` would one by one.

    Missing contacts and their conversations are created; a message whose id or ``source_message_id`` is stored
    already (or comes earlier in ``messages``) is skipped; each touched conversation gets its last message (the
    newest by ``sent_at``, the later one on a tie), unread count and messaging window in one UPDATE; and
    ``message.created`` goes into the outbox for each new message, in order. Call it inside a write
    transaction, on a database that answers ``INSERT ... RETURNING`` (see ``db.supports_returning``; SQLite
    answers ``UPDATE ... FROM`` from an earlier version on).

    Conversations are locked in the order of their ids (on PostgreSQL), so that two workers storing messages
    of overlapping conversations wait for each other instead of deadlocking.

    Returns:
      For each message, in order, whether it is new; and the ids of the contacts created.
    """
    conversations = {message.conversation_id: message for message in messages}
    contacts_created = _ensure_conversations(list(conversations.values()))
    firsts: dict[str, ContactMessage] = {}
    for message in messages:
        firsts.setdefault(message.message_id, message)
    inserted = _insert_new(list(firsts.values()))
    new = []
    for message in messages:
        new.append(message.message_id in inserted)
        inserted.discard(message.message_id)  # a second copy in the batch is not new
    created = [message for message, is_new in zip(messages, new, strict=True) if is_new]
    if created:
        _update_conversations(created)
        if "message.created" in outbox.subscribed_event_types():
            outbox.messages_created([Message(**_message_row(message)) for message in created])
    return StoredContactMessages(new, contacts_created)


def _ensure_conversations(firsts: list[ContactMessage]) -> set[str]:
    """Locks the conversations of ``firsts`` (one message per conversation), creating the missing ones.

    Returns:
      The ids of the contacts created.
    """
    lock = " FOR NO KEY UPDATE" if is_postgres() else ""
    ordered = sorted(message.conversation_id for message in firsts)
    found: set[str] = set()
    for chunk in _chunks(ordered):
        cursor = execute(_LOCK_CONVERSATIONS + lock, *chunk, ids=placeholders(len(chunk)))
        found.update(conversation_id for (conversation_id,) in cursor.fetchall())
    missing = [message for message in firsts if message.conversation_id not in found]
    if not missing:
        return set()
    # Rare (a contact's first message): Peewee is cheap enough here. A contact that another worker created
    # meanwhile is not ours to announce; its conversation came with it.
    contacts = [{"id": m.contact_id, "channel": m.channel_id, "source_contact_id": m.psid} for m in missing]
    insert = Contact.insert_many(contacts).on_conflict_ignore().returning(Contact.id)
    created = {contact_id for (contact_id,) in insert.tuples().execute()}
    rows = [
        {"id": m.conversation_id, "channel": m.channel_id, "contact": m.contact_id}
        for m in missing
        if m.contact_id in created
    ]
    if rows:
        Conversation.insert_many(rows).on_conflict_ignore().execute()
    return created


def _insert_new(messages: list[ContactMessage]) -> set[str]:
    """Inserts ``messages`` (distinct ids) unless stored already. Returns the ids of those inserted."""
    # Sorted by their unique key, so that two workers inserting the same redelivered messages never deadlock.
    ordered = sorted(messages, key=lambda message: (message.channel_id, message.source_message_id))
    inserted: set[str] = set()
    now = now_ms()
    for chunk in _chunks(ordered):
        params = []
        for message in chunk:
            params += (
                message.message_id,
                message.conversation_id,
                message.channel_id,
                message.source_message_id,
                Message.content.db_value(message.content),
                message.psid,
                message.sent_at,
                Message.metadata.db_value(message.metadata),
                now,
                now,
            )
        cursor = execute(_INSERT_CONTACT_MESSAGES, *params, rows=placeholders(len(chunk), _CONTACT_MESSAGE_ROW))
        inserted.update(message_id for (message_id,) in cursor.fetchall())
    return inserted


def _update_conversations(created: list[ContactMessage]) -> None:
    """Moves each conversation's last message, unread count and window past its new messages, in one UPDATE."""
    newest: dict[str, ContactMessage] = {}
    counts: dict[str, int] = {}
    for message in created:
        best = newest.get(message.conversation_id)
        if best is None or message.sent_at >= best.sent_at:  # insert_message's rule: the later one wins a tie
            newest[message.conversation_id] = message
        counts[message.conversation_id] = counts.get(message.conversation_id, 0) + 1
    for chunk in _chunks(sorted(newest)):
        params = []
        for conversation_id in chunk:
            message = newest[conversation_id]
            params += (conversation_id, message.message_id, message.sent_at, counts[conversation_id])
        execute(_UPDATE_CONVERSATIONS, *params, rows=placeholders(len(chunk), "({p}, {p}, {p}, {p})"))


def _message_row(message: ContactMessage) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "conversation": message.conversation_id,
        "channel": message.channel_id,
        "source_message_id": message.source_message_id,
        "content": message.content,
        "delivery_state": "delivered",
        "from_contact": True,
        "sender_id": message.psid,
        "sent_at": message.sent_at,
        "metadata": message.metadata,
    }


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), ROWS_PER_STATEMENT):
        yield items[start : start + ROWS_PER_STATEMENT]


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
