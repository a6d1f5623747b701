"""Answering contacts: ``messages.send`` and the Send API, with the messaging window, retries and states.

A send is accepted by :func:`accept_send` (window checked, message stored ``pending``, committed) and
delivered by :func:`deliver`, which the ``deliver_message`` actor calls; Dramatiq carries only the news,
the database is the record. Outcomes: ``delivered`` with Facebook's ``message_id`` (``metadata.source_id``
and ``source_message_id``), or ``failed`` with a reason in ``metadata.error``.

Retries
  Throttling and transient Graph errors are retried by re-enqueuing the message with exponential backoff and
  full jitter (at least Facebook's ``Retry-After``), up to :data:`MAX_SEND_ATTEMPTS` Send API calls, counted
  in the database so that a crash or a sweep never resets them; then ``failed`` with Facebook's reason.
  Waiting for a throttling slot is not an attempt. Permanent errors fail at once; an invalid token also
  marks the channel ``token_valid: false``.

Exactly once towards Facebook
  The Send API has no idempotency key, so the danger is the gap between Facebook accepting a message and
  our commit of its answer: a worker killed there leaves a message that Facebook has but we don't know it.
  Each attempt is therefore recorded (``send_state = "in_flight"``, committed, compare-and-set so that two
  runs of the actor can't both send) right before the HTTP call, after the throttling slot is taken. A run
  that finds an attempt in flight never sends again; once the attempt is older than the Graph timeout
  (:func:`attempt_stale_ms`) its worker is dead and the send is *in doubt*, and it is settled by Facebook's
  echo: every page send comes back as a ``message_echoes`` webhook, and we ask Facebook to carry
  ``message.metadata = "airy:<message id>"`` into it (:data:`MARKER_PREFIX`), so the ingestion of the echo
  finds the message by id and stores its mid (:func:`claim_echo`). No echo within :data:`ECHO_WAIT_MS` of the
  attempt → ``failed`` with a reason that says delivery is unknown (``send_state = "unconfirmed"``); an echo
  that arrives later still turns it ``delivered``.

  The guarantee: no message is ever handed to Facebook twice because of a crash, a redelivery, a sweep or a
  duplicate enqueue (at most once per message); it is exactly once whenever the worker survives the call or
  the echo arrives in time, and otherwise the message ends ``failed`` saying it may have been delivered.
  One exception is inherent to retrying timeouts, which the contract demands: when Facebook does not answer
  at all (a timeout, a dropped connection), it may still have accepted the message, so the retry waits at
  least :data:`ECHO_GRACE_MS` and sends only if no echo claimed the message meanwhile; an echo later than
  that can mean a duplicate. When the retries run out on such an error, the failure is ``unconfirmed`` too.

  The trade-off of the marker: ``message`` is forwarded verbatim except that ``metadata`` is added when the
  caller did not set one (contacts never see it; it only travels back in echoes, which other apps on the page
  may read). When the caller did set ``metadata`` we leave it alone, and an in-doubt send of that message
  cannot be matched to its echo: it ends ``failed`` (unconfirmed) once the attempt is stale.

Cost
  CPU bounds how many messages a second are sent (bench/send.py), so the path every message takes is short:
  accepting it is a SELECT and an INSERT (one statement with the conversation's update, on PostgreSQL);
  delivering it is a SELECT, the claim of the attempt and the record of Facebook's answer, each one statement
  committed on its own. An actor run hands its database connection back to the pool while it waits for a
  throttling slot or for Facebook, so a worker can run more threads than it holds connections.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import peewee
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from airy_actors import channels, outbox
from airy_actors.conversations import save_metadata, update_send_bookkeeping
from airy_actors.db import database, write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.graph import ErrorKind, GraphClient, GraphError
from airy_actors.models import Channel, Message, new_id
from airy_actors.throttling import PageThrottle, is_media
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
HUMAN_AGENT = "HUMAN_AGENT"
STANDARD_WINDOW_MS = 24 * 3_600_000
HUMAN_AGENT_WINDOW_MS = 7 * 24 * 3_600_000
MARKER_PREFIX = "airy:"

# Retries of throttled and transient errors (module constants, so that tests can shrink them).
MAX_SEND_ATTEMPTS = 8
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
THROTTLE_RETRY_MS = 500  # when no throttling slot came within the bounded wait
# Exactly once.
ATTEMPT_MARGIN_MS = 5_000  # beyond the Graph timeout, before an attempt in flight is presumed dead
ECHO_WAIT_MS = 30_000  # from the start of an interrupted attempt, how long its echo may take
ECHO_GRACE_MS = 3_000  # after Facebook did not answer, before retrying, for an echo to claim the message
SWEEP_GRACE_MS = 30_000  # a pending send untouched this long past its due time is re-enqueued


@dataclass(frozen=True)
class SendRequest:
    """What ``messages.send`` asks for, validated by the endpoint."""

    conversation_id: str
    message: dict[str, Any]
    messaging_type: str | None = None
    tag: str | None = None


# --- accepting a send ------------------------------------------------------------------------------------


def check_send_options(messaging_type: str | None, tag: str | None) -> str:
    """Validates ``messaging_type`` and ``tag`` together.

    Returns:
      The messaging type to send with: the given one, ``MESSAGE_TAG`` when only a tag is given (Facebook
      accepts tags with no other type), else ``RESPONSE``.

    Raises:
      BadRequest: naming the field.
    """
    if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
        raise BadRequest(f"messaging_type must be one of {', '.join(MESSAGING_TYPES)}")
    if messaging_type == "MESSAGE_TAG" and tag is None:
        raise BadRequest("tag is required when messaging_type is MESSAGE_TAG")
    if tag is not None and messaging_type not in (None, "MESSAGE_TAG"):
        raise BadRequest("tag is only allowed with messaging_type MESSAGE_TAG")
    if tag is not None:
        return "MESSAGE_TAG"
    return messaging_type or "RESPONSE"


def check_window(last_contact_message_at: int | None, tag: str | None, now: int) -> None:
    """Refuses a send outside the messaging window, before Facebook is asked.

    The window is 24 hours after the contact's last message; with tag ``HUMAN_AGENT``, 7 days.

    Raises:
      BadRequest: saying that the window closed, and when.
    """
    if last_contact_message_at is None:
        raise BadRequest(
            "the messaging window is not open: the contact has not written in this conversation yet, "
            "and Facebook lets a page answer only within 24 hours of the contact's last message"
        )
    last = iso_ms(last_contact_message_at)
    if now <= last_contact_message_at + STANDARD_WINDOW_MS:
        return
    if tag == HUMAN_AGENT:
        if now <= last_contact_message_at + HUMAN_AGENT_WINDOW_MS:
            return
        closed = iso_ms(last_contact_message_at + HUMAN_AGENT_WINDOW_MS)
        raise BadRequest(
            f"the messaging window closed at {closed}: tag HUMAN_AGENT allows answers up to 7 days after the "
            f"contact's last message ({last})"
        )
    closed = iso_ms(last_contact_message_at + STANDARD_WINDOW_MS)
    raise BadRequest(
        f"the messaging window closed at {closed}, 24 hours after the contact's last message ({last}); "
        f"outside it only tag HUMAN_AGENT may answer, up to 7 days after"
    )


# The statements that every message runs (accepting it here; loading, claiming and recording its send below)
# are plain SQL: compiling Peewee's query trees and building models from joined rows took several times the CPU
# of the round trips themselves, and CPU is what bounds how many messages a second the web and the worker
# handle (bench/send.py). The rare paths stay in Peewee. ``{p}`` is the database's placeholder; both engines
# run the same SQL.
_CONVERSATION = """
SELECT c.last_contact_message_at, ch.id, ch.connected, ch.page_token, ch.source_channel_id
FROM conversation AS c
JOIN channel AS ch ON ch.id = c.channel_id
WHERE c.id = {p}
"""
_INSERT_OUTBOUND = """
INSERT INTO message (id, conversation_id, channel_id, content, delivery_state, from_contact, sender_id, sent_at,
  metadata, created_at, updated_at, messaging_type, message_tag)
VALUES ({p}, {p}, {p}, {p}, 'pending', FALSE, {p}, {p}, {p}, {p}, {p}, {p}, {p})
"""
# The conversation's last message, as airy_actors.conversations.insert_message keeps it for a page's message:
# the newest by sent_at (a page's message changes neither the unread count nor the messaging window).
_LAST_MESSAGE = """
UPDATE conversation SET
  last_message_id = CASE WHEN last_message_at <= {p} THEN {p} ELSE last_message_id END,
  last_message_at = CASE WHEN last_message_at <= {p} THEN {p} ELSE last_message_at END
WHERE id = {p}
"""


def _execute(sql: str, *params: Any) -> Any:
    """Runs one of the statements above on this thread's connection (taken from the pool if need be)."""
    return database.execute_sql(sql.format(p=database.param), params)


def accept_send(request: SendRequest, now: int | None = None) -> Message:
    """Stores an outbound message ``pending``, after checking the channel and the messaging window.

    The caller enqueues the ``deliver_message`` actor after this returns (the write has committed).

    Raises:
      NotFound: when the conversation does not exist.
      BadRequest: when the channel is disconnected or the window is closed.
    """
    now = now_ms() if now is None else now
    messaging_type = check_send_options(request.messaging_type, request.tag)
    if isinstance(database.obj, peewee.PostgresqlDatabase) and "message.created" not in outbox.subscribed_event_types():
        # No event to write with it: the message and the conversation's last message are one statement, which
        # is atomic by itself, with no transaction to open and commit around it.
        message = _outbound_message(request, messaging_type, now)
        _execute(
            f"WITH inserted AS ({_INSERT_OUTBOUND}) {_LAST_MESSAGE}", *_insert_params(message), *_last_params(message)
        )
        return message
    with write_transaction():
        message = _outbound_message(request, messaging_type, now)
        _execute(_INSERT_OUTBOUND, *_insert_params(message))
        _execute(_LAST_MESSAGE, *_last_params(message))
        # After the conversation's row lock, as insert_message does: its events get outbox ids in commit order.
        outbox.message_created(message)
        return message


def _outbound_message(request: SendRequest, messaging_type: str, now: int) -> Message:
    """The message to store, once its conversation, channel and window are checked."""
    row = _execute(_CONVERSATION, request.conversation_id).fetchone()
    if row is None:
        raise NotFound(f"conversation {request.conversation_id} does not exist")
    last_contact_message_at, channel_id, connected, page_token, page_id = row
    if not connected or not page_token:
        raise BadRequest(f"the channel {channel_id} of this conversation is disconnected; reconnect the page to send")
    check_window(last_contact_message_at, request.tag, now)
    return Message(
        id=new_id(),
        conversation=request.conversation_id,
        channel=channel_id,
        source_message_id=None,
        content=request.message,
        delivery_state="pending",
        from_contact=False,
        sender_id=page_id,
        sent_at=now,
        metadata={},
        messaging_type=messaging_type,
        message_tag=request.tag,
        created_at=now_ms(),
    )


def _insert_params(message: Message) -> tuple[Any, ...]:
    return (
        message.id,
        message.conversation_id,
        message.channel_id,
        Message.content.db_value(message.content),
        message.sender_id,
        message.sent_at,
        Message.metadata.db_value(message.metadata),
        message.created_at,
        message.created_at,
        message.messaging_type,
        message.message_tag,
    )


def _last_params(message: Message) -> tuple[Any, ...]:
    return (message.sent_at, message.id, message.sent_at, message.sent_at, message.conversation_id)


# --- delivering it -----------------------------------------------------------------------------------------


def send_body(message: Message, psid: str) -> dict[str, Any]:
    """The Send API body of ``message``: its content verbatim, plus our echo marker when it has no metadata."""
    outgoing = dict(message.content)
    if "metadata" not in outgoing:
        outgoing["metadata"] = MARKER_PREFIX + message.id
    body: dict[str, Any] = {
        "recipient": {"id": psid},
        "messaging_type": message.messaging_type or "RESPONSE",
        "message": outgoing,
    }
    if message.message_tag:
        body["tag"] = message.message_tag
    return body


def has_marker(message: Message) -> bool:
    """Whether the echo of ``message`` carries our marker (the caller did not set ``metadata``)."""
    return "metadata" not in message.content


def attempt_stale_ms() -> int:
    """How old an attempt in flight must be before its worker is presumed dead: the Graph timeout, and more."""
    from airy_actors.config import get_settings

    return get_settings().graph_timeout_ms + ATTEMPT_MARGIN_MS


def backoff_ms(attempts: int, error: GraphError) -> int:
    """The delay before the next attempt, after ``attempts`` failed ones: exponential, full jitter.

    At least Facebook's ``Retry-After``, and at least :data:`ECHO_GRACE_MS` when Facebook did not answer.
    """
    ceiling = min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** max(attempts - 1, 0))
    delay = random.randint(MIN_BACKOFF_MS, max(ceiling, MIN_BACKOFF_MS))
    if error.retry_after_ms:
        delay = max(delay, error.retry_after_ms)
    if error.http_status is None:
        delay = max(delay, ECHO_GRACE_MS)
    return delay


@dataclass
class _Job:
    message: Message
    channel: Channel
    psid: str


# The contact's PSID by scalar subqueries: PostgreSQL plans them apart, in a fraction of the time that planning
# a four-table join takes, which was most of this query's cost.
_LOAD = """
SELECT m.content, m.delivery_state, m.messaging_type, m.message_tag, m.send_state, m.send_attempts,
       m.send_attempt_at, ch.id, ch.connected, ch.page_token, ch.source_channel_id,
       (SELECT k.source_contact_id FROM contact AS k
        WHERE k.id = (SELECT c.contact_id FROM conversation AS c WHERE c.id = m.conversation_id))
FROM message AS m
JOIN channel AS ch ON ch.id = m.channel_id
WHERE m.id = {p} AND NOT m.from_contact
"""
# The compare-and-set of an attempt: only from a waiting state, and only if no other run counted one meanwhile.
_CLAIM = """
UPDATE message SET send_state = 'in_flight', send_attempts = {p}, send_attempt_at = {p}, send_due_at = {p}
WHERE id = {p} AND NOT from_contact AND delivery_state = 'pending'
  AND (send_state IS NULL OR send_state = 'queued') AND COALESCE(send_attempts, 0) = {p}
"""
# What _mark_delivered writes, for the common case only: still pending, no mid yet (no echo came first), and
# metadata as accept_send stored it. Anything else takes the locked path.
_RECORD_DELIVERED = """
UPDATE message SET delivery_state = 'delivered', source_message_id = {p}, metadata = {p}, send_state = 'done',
  send_attempt_at = NULL, updated_at = {p}
WHERE id = {p} AND NOT from_contact AND delivery_state = 'pending' AND source_message_id IS NULL
  AND metadata = {p}
"""


def _load(message_id: str) -> _Job | None:
    row = _execute(_LOAD, message_id).fetchone()
    if row is None:
        return None
    content, state, kind, tag, send_state, attempts, attempt_at, channel_id, connected, token, page, psid = row
    message = Message(
        id=message_id,
        content=Message.content.python_value(content),
        delivery_state=state,
        messaging_type=kind,
        message_tag=tag,
        send_state=send_state,
        send_attempts=attempts,
        send_attempt_at=attempt_at,
    )
    channel = Channel(id=channel_id, connected=bool(connected), page_token=token, source_channel_id=page)
    return _Job(message, channel, psid)


def _release_connection() -> None:
    """Hands this thread's pooled connection back for a wait (a throttling slot, Facebook's answer).

    The next query takes one again. A worker thread so holds a connection only while it talks to the database,
    and a worker can run more threads than its pool has connections: PostgreSQL's are few, and shared.
    """
    if isinstance(database.obj, PooledDatabase) and not database.in_transaction():
        database.close()


def deliver(
    message_id: str, *, graph: GraphClient, throttle: PageThrottle, release_connection: bool = False
) -> int | None:
    """Moves one outbound message towards ``delivered`` or ``failed``; safe to run any number of times.

    Parameters:
      release_connection: hand the thread's pooled connection back while waiting for a throttling slot and for
        Facebook's answer; the next query takes one again. For an actor run (airy_actors.db_middleware closes
        whatever it holds at the end), never inside ``connection_context()``, which must close its own.

    Returns:
      None when nothing more is to be done by this run, or a delay (ms) after which the caller must run it
      again (a retry, a throttling wait, or a send in doubt waiting for its echo).
    """
    job = _load(message_id)
    if job is None or job.message.delivery_state != "pending":
        return None
    message, now = job.message, now_ms()
    if message.send_state == "in_flight":
        return _settle_in_flight(message, now)
    if not job.channel.connected or not job.channel.page_token:
        record_failed(message_id, "the channel was disconnected before the message could be sent")
        return None
    release = _release_connection if release_connection else None
    if not throttle.acquire(job.channel.source_channel_id, media=is_media(message.content), before_waiting=release):
        return THROTTLE_RETRY_MS + random.randint(0, THROTTLE_RETRY_MS)
    attempts = message.send_attempts or 0
    started = now_ms()
    claimed = _execute(_CLAIM, attempts + 1, started, started + attempt_stale_ms(), message_id, attempts).rowcount
    if not claimed:
        return None  # another run of the actor took this attempt (or finished the message); it carries on
    if release is not None:
        release()
    try:
        answer = graph.send_message(job.channel.page_token, send_body(message, job.psid))
    except GraphError as error:
        return _after_error(message_id, job.channel, error, attempt=attempts + 1, started=started)
    mid = answer.get("message_id")
    if not isinstance(mid, str) or not mid:
        return _after_error(
            message_id,
            job.channel,
            GraphError("Facebook answered without a message_id", kind=ErrorKind.PERMANENT, http_status=200),
            attempt=attempts + 1,
            started=started,
        )
    _record_with_retries(message_id, mid)
    return None


def _record_with_retries(message_id: str, mid: str) -> None:
    # Facebook has the message: losing its mid to a database blip (or, the connection having been handed back
    # during the call, to a pool that stays busy) would leave the send in doubt until its echo.
    for pause_s in (0.1, 0.5, 2.0):
        try:
            record_delivered(message_id, mid)
            return
        except (peewee.DatabaseError, MaxConnectionsExceeded):
            logger.warning("could not record a delivered send; trying again", extra={"message_id": message_id})
            time.sleep(pause_s)
    record_delivered(message_id, mid)


def _settle_in_flight(message: Message, now: int) -> int | None:
    """Another run's attempt is in flight: wait for it, or for its echo, and never send again."""
    started = message.send_attempt_at or 0
    stale_at = started + attempt_stale_ms()
    if now < stale_at:
        return stale_at - now + random.randint(0, 1_000)
    if has_marker(message) and now < started + ECHO_WAIT_MS:
        return started + ECHO_WAIT_MS - now + random.randint(0, 1_000)
    record_failed(
        message.id,
        "the send was interrupted before Facebook's answer was recorded and Facebook did not confirm it; "
        "it may or may not have been delivered, and was not sent again to avoid a duplicate",
    )
    return None


def _after_error(message_id: str, channel: Channel, error: GraphError, *, attempt: int, started: int) -> int | None:
    logger.info(
        "send failed",
        extra={"message_id": message_id, "kind": error.kind.value, "code": error.code, "attempt": attempt},
    )
    if error.kind is ErrorKind.TOKEN_INVALID:
        channels.flag_token_invalid(channel.id)  # through save_channel, so integrators hear of it
    if not error.retryable:
        record_failed(message_id, error.message, unconfirmed=False)
        return None
    if attempt >= MAX_SEND_ATTEMPTS:
        # When the last call got no answer at all, Facebook may have accepted it: its echo can still tell.
        reason = f"{error.message} (gave up after {attempt} attempts)"
        record_failed(message_id, reason, unconfirmed=error.http_status is None)
        return None
    delay = backoff_ms(attempt, error)
    rescheduled = update_send_bookkeeping(
        (Message.id == message_id)
        & (Message.delivery_state == "pending")
        & (Message.send_state == "in_flight")
        & (Message.send_attempt_at == started),
        send_state="queued",
        send_attempt_at=None,
        send_due_at=now_ms() + delay,
    )
    return delay if rescheduled else None


# --- the outcomes, the only visible changes: what save_metadata writes on the locked row, with its event ----


def _locked(message_id: str) -> Message | None:
    query = Message.select().where(Message.id == message_id)
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        query = query.for_update()
    return query.get_or_none()


def record_delivered(message_id: str, source_message_id: str) -> None:
    """Marks the message delivered as Facebook's ``source_message_id`` (unless its echo already did).

    When nobody subscribed to ``message.updated`` (no outbox event to write in the same transaction), the
    common case is one guarded UPDATE that writes what :func:`save_metadata` would; anything else, or a
    subscriber, takes the locked path.
    """
    if "message.updated" not in outbox.subscribed_event_types():
        metadata = Message.metadata.db_value({"source_id": source_message_id})
        untouched = Message.metadata.db_value({})
        if _execute(_RECORD_DELIVERED, source_message_id, metadata, now_ms(), message_id, untouched).rowcount:
            return
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
    if message.delivery_state == "pending" or message.send_state == "unconfirmed":
        _mark_delivered(message, source_message_id)
        logger.info("send confirmed by its echo", extra={"message_id": message.id})
        return message
    return None


# --- the sweeper ---------------------------------------------------------------------------------------------


def stale_sends(limit: int = 500) -> list[str]:
    """Pending outbound messages that no actor moved on in time: a crash, or a lost broker message.

    Each is left alone for another :data:`SWEEP_GRACE_MS` after this, so a backlog is not re-enqueued
    every sweep.
    """
    now = now_ms()
    due = peewee.fn.COALESCE(Message.send_due_at, Message.created_at)
    rows = (
        Message.select(Message.id)
        .where(
            (Message.delivery_state == "pending") & (Message.from_contact == False) & (due < now - SWEEP_GRACE_MS)  # noqa: E712
        )
        .order_by(Message.created_at)
        .limit(limit)
    )
    ids = [row.id for row in rows]
    if ids:
        update_send_bookkeeping(Message.id.in_(ids), send_due_at=now + SWEEP_GRACE_MS)
    return ids
