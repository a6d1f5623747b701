"""The outbox: every change an integrator may hear of, written in the transaction that makes the change.

A write path calls one of :func:`message_created`, :func:`message_updated`, :func:`conversation_updated` or
:func:`channel_updated` inside its transaction, after its own writes. The call inserts an :class:`OutboxEvent`
whose payload is the API representation at that moment, so an event exists exactly when its change committed:
a rollback takes the event with it. After the commit, the triggers registered with :func:`when_written` run
(peewee's ``after_commit``): the workers register one that enqueues a drain. The drain also runs every second,
so an event whose enqueue was lost still leaves within about a second.

When nobody subscribed to an event type and no client of the event stream connected within its window
(``stream_listeners``), nothing is written. Which types are wanted is cached per process for
:data:`SUBSCRIPTIONS_CACHE_MS`; ``/webhooks.subscribe`` waits that long before it answers, so
every change written after a subscription was answered reaches it. Changes whose transaction was already
running when the subscription was created may or may not reach it; changes written before it never do (the
subscription remembers the newest outbox id of its creation, see ``integrations.subscribe``). A stream client
that is the first within the window is answered that long after it was recorded, for the same reason.

On PostgreSQL each event also records its transaction's id, or its conversation's newest event's if higher
(``tx``), which the event stream orders by.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import peewee

from airy_actors.db import database, is_postgres
from airy_actors.models import Channel, Contact, Conversation, Message
from airy_actors.models.integrations import EVENT_TYPES, OutboxEvent, WebhookSubscription
from airy_actors.representations import channel_json, conversation_json, message_json
from airy_actors.stream_listeners import STREAM_WINDOW_MS, listened_since
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

SUBSCRIPTIONS_CACHE_MS = 500
INSERT_CHUNK = 200

_lock = threading.Lock()
_cached: tuple[float, frozenset[str]] | None = None  # (monotonic expiry, subscribed event types)
_generation = 0
_triggers: list[Callable[[], None]] = []


def message_created(message: Message) -> None:
    """Records that ``message`` was stored. Call it inside the transaction that inserted it."""
    _write("message.created", message.conversation_id, lambda: _message_payload(message))


def messages_created(messages: list[Message]) -> None:
    """Records that ``messages`` were stored, in order, with one INSERT per :data:`INSERT_CHUNK` of them.

    Call it inside the transaction that inserted them. The same events as :func:`message_created` for each, at
    the cost of a few round trips instead of one per message: a transaction storing a batch of messages ends
    sooner, and the event stream, which waits for older transactions to end, is the sooner for it.
    """
    if not messages or "message.created" not in subscribed_event_types():
        return
    _warn_outside_transaction("message.created")
    timestamp = now_ms()
    rows = [
        _row("message.created", message.conversation_id, _message_payload(message), timestamp) for message in messages
    ]
    for start in range(0, len(rows), INSERT_CHUNK):
        OutboxEvent.insert_many(rows[start : start + INSERT_CHUNK]).execute()
    _kick_after_commit()


def message_updated(message: Message) -> None:
    """Records ``message``'s new state (delivery state, reaction, edit, receipt), inside the updating transaction."""
    _write("message.updated", message.conversation_id, lambda: _message_payload(message))


def conversation_updated(conversation: Conversation) -> None:
    """Records ``conversation``'s new state (unread count, contact profile), inside the updating transaction.

    The row is read again, locked on PostgreSQL, so that the payload is the committed state and the event is
    ordered after any concurrent write to the same conversation.
    """
    _write("conversation.updated", conversation.id, lambda: _conversation_payload(conversation.id))


def channel_updated(channel: Channel) -> None:
    """Records ``channel``'s new state (connected, name, token health), inside the transaction that saved it."""
    _write("channel.updated", channel.id, lambda: channel_json(channel))


def when_written(trigger: Callable[[], None]) -> None:
    """Registers ``trigger``, called after each commit that wrote outbox events (once per transaction)."""
    _triggers.append(trigger)


def kick() -> None:
    """Runs the registered triggers: asks for a drain now. Never raises: the periodic drain is the safety net.

    Write paths need not call it: every transaction that wrote an outbox row calls it after its commit.
    """
    for trigger in _triggers:
        try:
            trigger()
        except Exception as exc:  # the change is committed; failing its caller now would only mislead it
            logger.warning("could not ask for an outbox drain", extra={"error": type(exc).__name__})


def subscribed_event_types() -> frozenset[str]:
    """The event types that someone wants, cached for :data:`SUBSCRIPTIONS_CACHE_MS`.

    Those of the subscriptions; every type while an event stream client connected within the stream's window.
    """
    global _cached
    cached = _cached
    started = time.monotonic()
    if cached is not None and cached[0] > started:
        return cached[1]
    generation = _generation
    types: set[str] = set()
    if listened_since(now_ms() - STREAM_WINDOW_MS):
        types.update(EVENT_TYPES)
    else:
        for (events,) in WebhookSubscription.select(WebhookSubscription.events).tuples():
            types.update(EVENT_TYPES if events is None else events)
    result = frozenset(types)
    with _lock:
        if generation == _generation:  # a forget() meanwhile means this answer may be stale already
            _cached = (started + SUBSCRIPTIONS_CACHE_MS / 1000, result)
    return result


def forget_subscriptions() -> None:
    """Drops this process's cached subscribed types (after a subscription changed here)."""
    global _cached, _generation
    with _lock:
        _generation += 1
        _cached = None


def _write(event_type: str, ordering_key: str, render: Callable[[], dict[str, Any]]) -> None:
    if event_type not in subscribed_event_types():
        return
    _warn_outside_transaction(event_type)
    OutboxEvent.insert(_row(event_type, ordering_key, render(), now_ms())).execute()
    _kick_after_commit()


def _row(event_type: str, ordering_key: str, payload: dict[str, Any], timestamp: int) -> dict[str, Any]:
    return {
        "type": event_type,
        "ordering_key": ordering_key,
        "payload": payload,
        "timestamp": timestamp,
        "tx": _stream_order(ordering_key),
    }


def _warn_outside_transaction(event_type: str) -> None:
    if not database.in_transaction():
        # Two separate commits could keep the change and lose the event: say so loudly, but keep the event.
        logger.error("outbox event written outside a transaction", extra={"type": event_type})


def _stream_order(ordering_key: str) -> peewee.Node | int:
    """The event's ``tx``: the writing transaction's id (PostgreSQL 13 on), or its key's newest ``tx`` if higher.

    Any value at least the writer's own id keeps the stream from skipping events (``event_stream``). Taking the
    key's newest as well keeps a conversation's events in commit order: a transaction that got its id early,
    then waited on the conversation's row lock for a younger one to commit, writes its event after that one's,
    and must not be ordered before it. SQLite serializes writers: its ids are commit order, and tx is 0.
    """
    if not is_postgres():
        return 0
    return peewee.SQL(
        "GREATEST(pg_current_xact_id()::text::bigint,"
        " COALESCE((SELECT max(tx) FROM outbox_event WHERE ordering_key = %s), 0))",
        [ordering_key],
    )


def _kick_after_commit() -> None:
    # One drain per transaction, however many events it wrote; peewee offers no public way to ask whether a
    # callback is registered, so look at its per-connection list.
    if kick not in database.obj._state.commit_callbacks:
        database.after_commit(kick)


def _message_payload(message: Message) -> dict[str, Any]:
    return {
        "conversation_id": message.conversation_id,
        "channel_id": message.channel_id,
        "message": message_json(message),
    }


def _conversation_payload(conversation_id: str) -> dict[str, Any]:
    query = Conversation.select().where(Conversation.id == conversation_id)
    if is_postgres():
        query = query.for_update()
    conversation = query.get()
    channel = Channel.get_by_id(conversation.channel_id)
    contact = Contact.get_by_id(conversation.contact_id)
    last = Message.get_or_none(Message.id == conversation.last_message_id) if conversation.last_message_id else None
    return conversation_json(conversation, channel, contact, last)
