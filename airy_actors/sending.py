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
  CPU bounds how many messages a second are sent (bench/send.py), so the path every message takes is short,
  and its fixed costs are shared by the messages that come together. Sends posted at the same time are
  accepted together (:func:`accept_sends`, from api/send_writer.py): one SELECT, one INSERT (one statement with
  the conversations' update, on PostgreSQL), one commit, one enqueue. They are delivered together
  (:func:`deliver_batch`, the ``deliver_messages`` actor): one SELECT, one throttling request a page, one claim
  of the attempts (the same compare-and-set, row by row), the Send API calls in parallel, one record of the
  delivered ones; each statement committed on its own. Whatever is rare or went wrong takes the path of one
  message (:func:`deliver`). A run hands its database connection back to the pool while it waits for a
  throttling slot or for Facebook, so a worker can run more threads than it holds connections.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import peewee
from playhouse.pool import MaxConnectionsExceeded

from airy_actors import channels, db, outbox, throttling
from airy_actors.conversations import save_metadata, update_send_bookkeeping
from airy_actors.db import database, execute, placeholders, supports_returning, write_transaction
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
NO_MESSAGE_ID = "Facebook answered without a message_id"
# Batches: the most sends accepted together, and so delivered together.
MAX_BATCH = 32


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
_CONVERSATIONS = """
SELECT c.id, c.last_contact_message_at, ch.id, ch.connected, ch.page_token, ch.source_channel_id
FROM conversation AS c
JOIN channel AS ch ON ch.id = c.channel_id
WHERE c.id IN ({ids})
"""
_INSERT_OUTBOUND = """
INSERT INTO message (id, conversation_id, channel_id, content, delivery_state, from_contact, sender_id, sent_at,
  metadata, created_at, updated_at, messaging_type, message_tag)
VALUES {messages}
"""
_OUTBOUND_ROW = "({p}, {p}, {p}, {p}, 'pending', FALSE, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
# Each conversation's last message, as airy_actors.conversations.insert_message keeps it for a page's message:
# the newest by sent_at (a page's message changes neither the unread count nor the messaging window). The rows
# are (conversation id, message id, sent_at), one a conversation; VALUES names its columns column1.. on both
# engines.
_LAST_MESSAGES = """
UPDATE conversation SET
  last_message_id = CASE WHEN last_message_at <= v.column3 THEN v.column2 ELSE last_message_id END,
  last_message_at = CASE WHEN last_message_at <= v.column3 THEN v.column3 ELSE last_message_at END
FROM (VALUES {conversations}) AS v
WHERE conversation.id = v.column1
"""


def accept_send(request: SendRequest, now: int | None = None) -> Message:
    """Stores an outbound message ``pending``, after checking the channel and the messaging window.

    The caller enqueues the ``deliver_message`` actor after this returns (the write has committed).

    Raises:
      NotFound: when the conversation does not exist.
      BadRequest: when the channel is disconnected or the window is closed.
    """
    [accepted] = accept_sends([request], now)
    if isinstance(accepted, Exception):
        raise accepted
    return accepted


def accept_sends(requests: list[SendRequest], now: int | None = None) -> list[Message | Exception]:
    """Stores several outbound messages ``pending`` at once: one SELECT, one INSERT, one commit.

    Sends that arrive together (messages.send under load) so share the round trips and the commit, which cost
    far more than checking each. Each request is checked on its own, and a bad one fails alone.

    The caller enqueues the delivery of the accepted messages after this returns (the writes have committed).

    Returns:
      For each request, in order, its stored message or its error: NotFound when the conversation does not
      exist, BadRequest when its options are wrong, its channel is disconnected or its window is closed; when
      storing the batch failed and some request of it then fails alone, the database's error.
    """
    now = now_ms() if now is None else now
    try:
        return _accept_together(requests, now)
    except peewee.DatabaseError:
        if len(requests) == 1:
            raise
        logger.warning("could not store a batch of sends; storing each alone", exc_info=True)
    return [_accept_alone(request, now) for request in requests]


def _accept_alone(request: SendRequest, now: int) -> Message | Exception:
    try:
        return _accept_together([request], now)[0]
    except peewee.DatabaseError as error:
        return error


def _accept_together(requests: list[SendRequest], now: int) -> list[Message | Exception]:
    if isinstance(database.obj, peewee.PostgresqlDatabase) and "message.created" not in outbox.subscribed_event_types():
        # No event to write with them: the messages and the conversations' last messages are one statement,
        # which is atomic by itself, with no transaction to open and commit around it.
        results = _outbound_messages(requests, now)
        messages = _accepted(results)
        if messages:
            rows, params = _inserted(messages)
            last_rows, last_params = _last_messages(messages)
            statement = f"WITH inserted AS ({_INSERT_OUTBOUND}) {_LAST_MESSAGES}"
            execute(statement, *params, *last_params, messages=rows, conversations=last_rows)
        return results
    with write_transaction():
        results = _outbound_messages(requests, now)
        messages = _accepted(results)
        if messages:
            rows, params = _inserted(messages)
            execute(_INSERT_OUTBOUND, *params, messages=rows)
            last_rows, last_params = _last_messages(messages)
            execute(_LAST_MESSAGES, *last_params, conversations=last_rows)
            # After the conversations' row locks, as insert_message does: events get outbox ids in commit order.
            for message in messages:
                outbox.message_created(message)
        return results


def _accepted(results: list[Message | Exception]) -> list[Message]:
    return [result for result in results if isinstance(result, Message)]


def _outbound_messages(requests: list[SendRequest], now: int) -> list[Message | Exception]:
    """The messages to store, each once its options, conversation, channel and window are checked."""
    conversation_ids = list(dict.fromkeys(request.conversation_id for request in requests))
    rows = execute(_CONVERSATIONS, *conversation_ids, ids=placeholders(len(conversation_ids))).fetchall()
    conversations = {row[0]: row[1:] for row in rows}
    results: list[Message | Exception] = []
    for request in requests:
        try:
            results.append(_outbound_message(request, conversations.get(request.conversation_id), now))
        except (BadRequest, NotFound) as error:
            results.append(error)
    return results


def _outbound_message(request: SendRequest, conversation: tuple[Any, ...] | None, now: int) -> Message:
    messaging_type = check_send_options(request.messaging_type, request.tag)
    if conversation is None:
        raise NotFound(f"conversation {request.conversation_id} does not exist")
    last_contact_message_at, channel_id, connected, page_token, page_id = conversation
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


def _inserted(messages: list[Message]) -> tuple[str, list[Any]]:
    """The rows of ``messages`` for :data:`_INSERT_OUTBOUND`, and their parameters."""
    params: list[Any] = []
    for message in messages:
        params += (
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
    return placeholders(len(messages), _OUTBOUND_ROW), params


def _last_messages(messages: list[Message]) -> tuple[str, list[Any]]:
    """The rows for :data:`_LAST_MESSAGES`: the batch's last message of each conversation (they share sent_at)."""
    last = {message.conversation_id: message for message in messages}
    params: list[Any] = []
    for message in last.values():
        params += (message.conversation_id, message.id, message.sent_at)
    return placeholders(len(last), "({p}, {p}, {p})"), params


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
SELECT m.id, m.content, m.delivery_state, m.messaging_type, m.message_tag, m.send_state, m.send_attempts,
       m.send_attempt_at, ch.id, ch.connected, ch.page_token, ch.source_channel_id,
       (SELECT k.source_contact_id FROM contact AS k
        WHERE k.id = (SELECT c.contact_id FROM conversation AS c WHERE c.id = m.conversation_id))
FROM message AS m
JOIN channel AS ch ON ch.id = m.channel_id
WHERE m.id IN ({ids}) AND NOT m.from_contact
"""
# The compare-and-set of an attempt: only from a waiting state, and only if no other run counted one meanwhile.
_CLAIM = """
UPDATE message SET send_state = 'in_flight', send_attempts = {p}, send_attempt_at = {p}, send_due_at = {p}
WHERE id = {p} AND NOT from_contact AND delivery_state = 'pending'
  AND (send_state IS NULL OR send_state = 'queued') AND COALESCE(send_attempts, 0) = {p}
"""
# The same compare-and-set for several messages at once, each against the attempts its run loaded: the rows
# of ``attempts`` are (message id, attempts so far). RETURNING says which ones this run claimed.
_CLAIM_MANY = """
UPDATE message SET send_state = 'in_flight', send_attempts = COALESCE(send_attempts, 0) + 1, send_attempt_at = {p},
  send_due_at = {p}
WHERE id IN ({ids}) AND NOT from_contact AND delivery_state = 'pending'
  AND (send_state IS NULL OR send_state = 'queued') AND (id, COALESCE(send_attempts, 0)) IN (VALUES {attempts})
RETURNING id
"""
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


def _load(message_id: str) -> _Job | None:
    return _load_many([message_id]).get(message_id)


def _load_many(message_ids: list[str]) -> dict[str, _Job]:
    rows = execute(_LOAD, *message_ids, ids=placeholders(len(message_ids))).fetchall()
    return {row[0]: _job(row) for row in rows}


def _job(row: tuple[Any, ...]) -> _Job:
    message_id, content, state, kind, tag, send_state, attempts, attempt_at = row[:8]
    channel_id, connected, token, page, psid = row[8:]
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


def deliver(
    message_id: str, *, graph: GraphClient, throttle: PageThrottle, release_connection: bool = False
) -> int | None:
    """Moves one outbound message towards ``delivered`` or ``failed``; safe to run any number of times.

    Parameters:
      release_connection: hand the thread's pooled connection back while waiting for a throttling slot and for
        Facebook's answer; the next query takes one again. For an actor run (workers.database_connections closes
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
    release = db.release_connection if release_connection else None
    if not throttle.acquire(job.channel.source_channel_id, media=is_media(message.content), before_waiting=release):
        return THROTTLE_RETRY_MS + random.randint(0, THROTTLE_RETRY_MS)
    attempts = message.send_attempts or 0
    started = now_ms()
    if not _claim([job], started):
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
            GraphError(NO_MESSAGE_ID, kind=ErrorKind.PERMANENT, http_status=200),
            attempt=attempts + 1,
            started=started,
        )
    _record_with_retries([(message_id, mid)])
    return None


def deliver_batch(
    message_ids: list[str], *, graph: GraphClient, throttle: PageThrottle, release_connection: bool = False
) -> list[tuple[list[str], int]]:
    """Moves several outbound messages towards ``delivered`` or ``failed``; safe to run any number of times.

    Each message takes the path :func:`deliver` takes, with the same compare-and-set of its attempt, but each
    step is one query or one call for the whole batch: the load, the throttling slots of each page, the claim of
    the attempts and the record of the delivered ones; the Send API calls go out in parallel. What is rare (an
    attempt in flight, a disconnected channel, an audio or video) and every error after a call take the path of
    one message: the caller runs it again alone.

    Parameters:
      release_connection: as for :func:`deliver`.

    Returns:
      The messages that the caller must run again, in groups, each with its delay (ms): alone, a rare one (at
      once) or a retry; together, the messages that got no throttling slot.
    """
    if not message_ids:
        return []
    common: list[_Job] = []
    again: list[tuple[list[str], int]] = []
    for job in _load_many(list(dict.fromkeys(message_ids))).values():
        if job.message.delivery_state != "pending":
            continue
        ordinary = job.message.send_state != "in_flight" and job.channel.connected and job.channel.page_token
        if ordinary and not is_media(job.message.content):
            common.append(job)
        else:
            again.append(([job.message.id], 0))  # at once, alone: its own run may wait, and must not hold the batch
    release = db.release_connection if release_connection else None
    slotted, unslotted = _take_slots(common, throttle, release)
    if unslotted:
        again.append(([job.message.id for job in unslotted], THROTTLE_RETRY_MS + random.randint(0, THROTTLE_RETRY_MS)))
    if slotted:
        again += _send_claimed(slotted, graph, release)
    return again


def _take_slots(
    jobs: list[_Job], throttle: PageThrottle, release: Callable[[], None] | None
) -> tuple[list[_Job], list[_Job]]:
    """Throttling slots for ``jobs``, one request a page: those that got one, and those that did not."""
    by_page: dict[str, list[_Job]] = {}
    for job in jobs:
        by_page.setdefault(job.channel.source_channel_id, []).append(job)
    deadline = time.monotonic() + throttling.MAX_WAIT_MS / 1000
    slotted: list[_Job] = []
    unslotted: list[_Job] = []
    for page_id, page_jobs in by_page.items():
        wait_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        taken = throttle.acquire_text(page_id, len(page_jobs), max_wait_ms=wait_ms, before_waiting=release)
        slotted += page_jobs[:taken]
        unslotted += page_jobs[taken:]
    return slotted, unslotted


def _send_claimed(
    jobs: list[_Job], graph: GraphClient, release: Callable[[], None] | None
) -> list[tuple[list[str], int]]:
    """Claims the attempts of ``jobs``, sends those claimed in parallel, and records the answers."""
    started = now_ms()
    claimed = _claim(jobs, started)
    jobs = [job for job in jobs if job.message.id in claimed]  # the others: another run took them, it carries on
    if release is not None:
        release()
    answers = _send_all(graph, jobs)
    delivered: list[tuple[str, str]] = []
    again: list[tuple[list[str], int]] = []
    failures: list[tuple[_Job, GraphError]] = []
    for job, answer in zip(jobs, answers, strict=True):
        message_id = job.message.id
        if answer is _TOO_LATE:
            again.append(([message_id], _unclaim(message_id, started)))
        elif isinstance(answer, GraphError):
            failures.append((job, answer))
        elif isinstance(answer, Exception):
            # As when a run of one message raises: the attempt stays in flight, and a later run settles it.
            logger.error("a send failed unexpectedly", extra={"message_id": message_id}, exc_info=answer)
            again.append(([message_id], attempt_stale_ms()))
        elif isinstance(answer.get("message_id"), str) and answer["message_id"]:
            delivered.append((message_id, answer["message_id"]))
        else:
            failures.append((job, GraphError(NO_MESSAGE_ID, kind=ErrorKind.PERMANENT, http_status=200)))
    _record_with_retries(delivered)
    for job, error in failures:
        attempt = (job.message.send_attempts or 0) + 1
        delay = _after_error(job.message.id, job.channel, error, attempt=attempt, started=started)
        if delay is not None:
            again.append(([job.message.id], delay))
    return again


def _claim(jobs: list[_Job], started: int) -> set[str]:
    """The compare-and-set of each job's attempt; returns the ids of the messages claimed."""
    stale_at = started + attempt_stale_ms()
    if not supports_returning():
        return {job.message.id for job in jobs if _claim_one(job.message, started, stale_at)}
    ids = [job.message.id for job in jobs]
    attempts = [value for job in jobs for value in (job.message.id, job.message.send_attempts or 0)]
    rows = execute(
        _CLAIM_MANY,
        started,
        stale_at,
        *ids,
        *attempts,
        ids=placeholders(len(ids)),
        attempts=placeholders(len(ids), "({p}, {p})"),
    ).fetchall()
    return {message_id for (message_id,) in rows}


def _claim_one(message: Message, started: int, stale_at: int) -> bool:
    attempts = message.send_attempts or 0
    return bool(execute(_CLAIM, attempts + 1, started, stale_at, message.id, attempts).rowcount)


def _unclaim(message_id: str, started: int) -> int:
    """Gives back an attempt that was claimed but never sent; returns when to run the message again."""
    delay = THROTTLE_RETRY_MS + random.randint(0, THROTTLE_RETRY_MS)
    update_send_bookkeeping(
        (Message.id == message_id)
        & (Message.delivery_state == "pending")
        & (Message.send_state == "in_flight")
        & (Message.send_attempt_at == started),
        send_state="queued",
        send_attempts=Message.send_attempts - 1,
        send_attempt_at=None,
        send_due_at=now_ms() + delay,
    )
    return delay


class _TooLate:
    """What :func:`_send_all` answers for a send that waited too long for a thread, and was not made."""


_TOO_LATE = _TooLate()
# Threads of this process that make the Send API calls of batches, started as calls need them. The bound is what
# the Procfile's 12 worker threads claim at most (12 batches of MAX_BATCH); with more worker threads, a claimed
# call that finds no thread free within half the attempt margin is not made (see _send_one): an attempt in
# flight must be one being made, or a run that finds it stale could take it for a dead worker's.
SEND_THREADS = 384
_send_pool: ThreadPoolExecutor | None = None
_send_pool_lock = threading.Lock()


def _send_all(graph: GraphClient, jobs: list[_Job]) -> list[Any]:
    """Each job's Send API call, in parallel: Facebook's answer, the error it raised, or :data:`_TOO_LATE`."""
    deadline = time.monotonic() + ATTEMPT_MARGIN_MS / 2000
    if len(jobs) == 1:
        return [_send_one(graph, jobs[0], deadline)]
    pool = _sending_threads()
    futures = [pool.submit(_send_one, graph, job, deadline) for job in jobs]
    return [future.result() for future in futures]


def _send_one(graph: GraphClient, job: _Job, deadline: float) -> Any:
    if time.monotonic() > deadline:
        return _TOO_LATE
    try:
        return graph.send_message(job.channel.page_token, send_body(job.message, job.psid))
    except Exception as error:
        return error


def _sending_threads() -> ThreadPoolExecutor:
    global _send_pool
    with _send_pool_lock:
        if _send_pool is None:
            _send_pool = ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="send")
        return _send_pool


def _record_with_retries(delivered: list[tuple[str, str]]) -> None:
    # Facebook has the messages: losing their mids to a database blip (or, the connection having been handed back
    # during the calls, to a pool that stays busy) would leave the sends in doubt until their echoes.
    if not delivered:
        return
    for pause_s in (0.1, 0.5, 2.0):
        try:
            record_many_delivered(delivered)
            return
        except (peewee.DatabaseError, MaxConnectionsExceeded):
            logger.warning("could not record delivered sends; trying again", extra={"sends": len(delivered)})
            time.sleep(pause_s)
    record_many_delivered(delivered)


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
