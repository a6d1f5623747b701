"""The outcomes of a send, its only visible changes: delivered, failed, or claimed by its echo.

Each is written by ``save_metadata`` on the locked row, with its outbox event.

Echoes come back from Messenger with our app's id and our marker (``message.metadata``), so that an echo finds
its message by id (:func:`claim_echo`). Instagram echoes name no app, and Instagram's Send API documents no
``metadata`` to carry a marker: an Instagram echo is told ours by its ``mid`` once the send actor recorded it,
waits while a send to that contact is in flight (:func:`send_in_flight`), and settles a send left in doubt by a
crash or a timeout when it has the same text (:func:`claim_unconfirmed_echo`).
"""

from __future__ import annotations

import logging
from typing import Any

from airy_actors import metrics, outbox
from airy_actors.conversations import save_metadata, update_send_bookkeeping
from airy_actors.db import execute, is_postgres, placeholders, supports_returning, write_transaction
from airy_actors.models import Channel, Message, stable_id
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

MARKER_PREFIX = "airy:"  # the echo of a send carries "airy:<message id>" in message.metadata

# What _mark_delivered writes, for the common case only: still pending, no mid yet (no echo came first), and
# metadata as accept_send stored it. Anything else takes the locked path.
_RECORD_DELIVERED = """
UPDATE message SET delivery_state = 'delivered', source_message_id = {p}, metadata = {p}, send_state = 'done',
  send_attempt_at = NULL, updated_at = {p}
WHERE id = {p} AND NOT from_contact AND delivery_state = 'pending' AND source_message_id IS NULL
  AND metadata = {p}
"""
# The same for several messages: the rows of ``answers`` are (message id, mid, metadata); RETURNING says which
# ones took this path.
_RECORD_MANY_DELIVERED = """
UPDATE message SET delivery_state = 'delivered', source_message_id = v.column2, metadata = v.column3,
  send_state = 'done', send_attempt_at = NULL, updated_at = {p}
FROM (VALUES {answers}) AS v
WHERE message.id = v.column1 AND message.id IN ({ids}) AND NOT message.from_contact
  AND message.delivery_state = 'pending' AND message.source_message_id IS NULL AND message.metadata = {p}
RETURNING message.id
"""


def _locked(message_id: str) -> Message | None:
    query = Message.select().where(Message.id == message_id)
    if is_postgres():
        query = query.for_update()
    return query.get_or_none()


def record_delivered(message_id: str, source_message_id: str) -> None:
    """Marks the message delivered as Facebook's ``source_message_id`` (unless its echo already did)."""
    record_many_delivered([(message_id, source_message_id)])


def record_many_delivered(delivered: list[tuple[str, str]]) -> None:
    """Marks messages delivered, given as (message id, Facebook's mid), unless their echoes already did.

    When nobody subscribed to ``message.updated`` (no outbox event to write in the same transaction), the
    common case is a guarded UPDATE that writes what :func:`save_metadata` would, one for them all where
    RETURNING says which ones it took; anything else, or a subscriber, takes the locked path of one message.
    """
    recorded = set() if "message.updated" in outbox.subscribed_event_types() else _recorded_at_once(delivered)
    for message_id, mid in delivered:
        if message_id not in recorded:
            _record_locked(message_id, mid)
    metrics.SENDS_DELIVERED.inc(len(delivered))


def _recorded_at_once(delivered: list[tuple[str, str]]) -> set[str]:
    """The common case of :func:`record_many_delivered`; returns the ids of the messages it recorded."""
    untouched = Message.metadata.db_value({})
    if not supports_returning():
        return {
            message_id
            for message_id, mid in delivered
            if execute(
                _RECORD_DELIVERED, mid, Message.metadata.db_value({"source_id": mid}), now_ms(), message_id, untouched
            ).rowcount
        }
    params = [
        value
        for message_id, mid in delivered
        for value in (message_id, mid, Message.metadata.db_value({"source_id": mid}))
    ]
    ids = [message_id for message_id, _ in delivered]
    rows = execute(
        _RECORD_MANY_DELIVERED,
        now_ms(),
        *params,
        *ids,
        untouched,
        answers=placeholders(len(delivered), "({p}, {p}, {p})"),
        ids=placeholders(len(ids)),
    ).fetchall()
    return {message_id for (message_id,) in rows}


def _record_locked(message_id: str, source_message_id: str) -> None:
    with write_transaction():
        message = _locked(message_id)
        if message is None:
            return
        if message.delivery_state == "delivered" and message.source_message_id == source_message_id:
            update_send_bookkeeping(Message.id == message_id, send_state="done", send_attempt_at=None)
            return
        _mark_delivered(message, source_message_id)


def _mark_delivered(message: Message, source_message_id: str) -> None:
    metadata = {key: value for key, value in message.metadata.items() if key != "error"}
    metadata["source_id"] = source_message_id
    save_metadata(
        message,
        metadata,
        delivery_state="delivered",
        source_message_id=source_message_id,
        send_state="done",
        send_attempt_at=None,
    )


def record_failed(message_id: str, reason: str, *, unconfirmed: bool | None = None) -> None:
    """Marks a pending message failed with ``reason``.

    Parameters:
      unconfirmed: whether Facebook may have the message all the same (it never answered), so that its echo
        may still turn it ``delivered``; None: when an attempt is in flight (a crash, an error around the call).
    """
    with write_transaction():
        message = _locked(message_id)
        if message is None or message.delivery_state != "pending":
            return
        if unconfirmed is None:
            unconfirmed = message.send_state == "in_flight"
        state = "unconfirmed" if unconfirmed else "done"
        save_metadata(
            message,
            {**message.metadata, "error": reason},
            delivery_state="failed",
            send_state=state,
            send_attempt_at=None,
        )
        metrics.SENDS_FAILED.inc()


def claim_echo(channel: Channel, source_message_id: str, event: dict[str, Any]) -> Message | None:
    """Finds the outbound message whose echo this is, by our marker, and stores its mid.

    Called by ingestion (in its transaction) for an echo of our app whose mid is not stored yet: the send
    actor has not recorded Facebook's answer, or never will (a crash).

    Parameters:
      channel: the page the echo came from.
      source_message_id: the echo's ``mid``.
      event: the echo's messaging event, ``{"sender", "recipient", "message": {..., "metadata"}}``.

    Returns:
      The message, now delivered with this mid; None when the echo carries no marker of ours.
    """
    inner = event.get("message") if isinstance(event, dict) else None
    marker = inner.get("metadata") if isinstance(inner, dict) else None
    if not isinstance(marker, str) or not marker.startswith(MARKER_PREFIX):
        return None
    message = _locked(marker.removeprefix(MARKER_PREFIX))
    if message is None or message.channel_id != channel.id or message.from_contact:
        return None
    if message.source_message_id == source_message_id:
        return message
    if message.source_message_id is not None:
        return None
    if message.delivery_state != "delivered":  # the echo proves Facebook has it, whatever we concluded
        _mark_delivered(message, source_message_id)
        logger.info("send confirmed by its echo", extra={"message_id": message.id})
        return message
    return None


def send_in_flight(channel: Channel, contact_id: str) -> bool:
    """Whether a send of ours to ``contact_id`` was handed to Facebook and its answer is not recorded yet.

    Its echo may arrive first, and must wait for the send actor to record the mid rather than be taken for a
    message written elsewhere.
    """
    return (
        Message.select(Message.id)
        .where(
            (Message.conversation == stable_id("conversation", channel.id, contact_id))
            & (Message.from_contact == False)  # noqa: E712
            & (Message.send_state == "in_flight")
            & Message.source_message_id.is_null()
        )
        .exists()
    )


def claim_unconfirmed_echo(
    channel: Channel, contact_id: str, source_message_id: str, event: dict[str, Any]
) -> Message | None:
    """Settles as delivered the oldest send to ``contact_id`` left in doubt whose text is the echo's, if any.

    A send is in doubt (``failed``, ``send_state = "unconfirmed"``) when its worker died in the call or Facebook
    never answered: Facebook may have it. Without a marker in the echo, the same text in the same conversation is
    the best evidence there is; an echo with other text, or with none (an attachment), claims nothing.

    Returns:
      The message, now delivered with this mid; None when no send in doubt matches.
    """
    inner = event.get("message") if isinstance(event, dict) else None
    text = inner.get("text") if isinstance(inner, dict) else None
    if not isinstance(text, str):
        return None
    candidates = (
        Message.select()
        .where(
            (Message.conversation == stable_id("conversation", channel.id, contact_id))
            & (Message.from_contact == False)  # noqa: E712
            & (Message.send_state == "unconfirmed")
            & Message.source_message_id.is_null()
        )
        .order_by(Message.sent_at, Message.id)
    )
    for candidate in candidates:
        if candidate.content.get("text") != text:
            continue
        message = _locked(candidate.id)
        if message is None or message.send_state != "unconfirmed" or message.source_message_id is not None:
            continue
        _mark_delivered(message, source_message_id)
        logger.info("send in doubt confirmed by its echo", extra={"message_id": message.id})
        return message
    return None
