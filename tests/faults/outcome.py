"""What a user can check after a fault: every accepted event is one message, and nothing is half-written."""

from __future__ import annotations

from collections import Counter

import peewee

from airy_actors.models import Contact, Conversation, Message, WebhookRequest
from tests.support import wait_until


def message_count() -> int:
    return Message.select().count()


def wait_for_messages(expected: int, *, timeout: float) -> None:
    """Waits until at least ``expected`` messages are stored (more would be duplicates, checked after)."""
    wait_until(
        lambda: message_count() >= expected,
        timeout=timeout,
        interval=0.5,
        message=f"{expected} messages were not all stored (have {message_count()})",
    )


def assert_each_event_is_one_message(mids: list[str]) -> None:
    """Every mid is exactly one message, there is no other message, and each conversation's counters agree."""
    stored = Counter(message.source_message_id for message in Message.select(Message.source_message_id))
    duplicates = {mid: count for mid, count in stored.items() if count > 1}
    missing = sorted(set(mids) - set(stored))
    unexpected = sorted(set(stored) - set(mids))
    assert (duplicates, missing[:10], unexpected[:10]) == ({}, [], []), (
        f"{len(missing)} missing, {len(unexpected)} unexpected, {len(duplicates)} duplicated"
    )
    assert len(stored) == len(set(mids))
    # Applying an event twice would count it twice, even where the unique index stops the second row.
    per_conversation = dict(
        Message.select(Message.conversation, peewee.fn.COUNT(Message.id)).group_by(Message.conversation).tuples()
    )
    unread = dict(Conversation.select(Conversation.id, Conversation.unread_message_count).tuples())
    assert unread == per_conversation
    assert Contact.select().count() == Conversation.select().count() == len(per_conversation)
    # Each conversation points at its newest message (one of them, when several were sent in the same ms).
    for conversation in Conversation.select():
        sent = dict(Message.select(Message.id, Message.sent_at).where(Message.conversation == conversation.id).tuples())
        newest = max(sent.values())
        assert conversation.last_message_at == newest
        assert sent.get(conversation.last_message_id) == newest


def assert_requests_stored_once_and_processed(bodies: list[bytes]) -> None:
    """Each request is stored once, as sent, and processed; no other request is stored."""
    rows = list(WebhookRequest.select(WebhookRequest.body, WebhookRequest.processed_at))
    stored = Counter(row.body.encode() for row in rows)
    assert stored == Counter(set(bodies))
    assert [row for row in rows if row.processed_at is None] == []
