"""Delivering accepted sends through the Send API: claims, throttling, parallel calls, retries, sweeps.

Messenger sends go to ``/me/messages``; Instagram sends to ``/{page_id}/messages`` of the account's page, with the
page token, unmarked (Instagram's Send API documents no ``metadata``), and under Instagram's own rates.
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

from airy_actors import channels, db, throttling
from airy_actors.backoff import backoff_ms as exponential_backoff_ms
from airy_actors.config import get_settings
from airy_actors.conversations import update_send_bookkeeping
from airy_actors.db import execute, placeholders, supports_returning
from airy_actors.graph import ErrorKind, GraphClient, GraphError
from airy_actors.models import FACEBOOK, INSTAGRAM, Channel, Message
from airy_actors.sending.attachments import outgoing_content, uploaded_media_id
from airy_actors.sending.outcomes import MARKER_PREFIX, record_failed, record_many_delivered
from airy_actors.throttling import PageThrottle, is_media
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

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


def send_body(
    message: Message, psid: str, content: dict[str, Any] | None = None, *, platform: str = FACEBOOK
) -> dict[str, Any]:
    """The Send API body of ``message``: its content (or ``content``), plus our echo marker when it has no metadata.

    Parameters:
      platform: the channel's source; Instagram's messages go as given, without a marker.
    """
    outgoing = dict(message.content if content is None else content)
    if "metadata" not in outgoing and platform != INSTAGRAM:
        outgoing["metadata"] = MARKER_PREFIX + message.id
    if message.notification_token:
        # A recurring notification message: the token stands for the contact, and no messaging type applies.
        return {"recipient": {"notification_messages_token": message.notification_token}, "message": outgoing}
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
    return get_settings().graph_timeout_ms + ATTEMPT_MARGIN_MS


def backoff_ms(attempts: int, error: GraphError) -> int:
    """The delay before the next attempt, after ``attempts`` failed ones: exponential, full jitter.

    At least Facebook's ``Retry-After``, and at least :data:`ECHO_GRACE_MS` when Facebook did not answer.
    """
    floor = error.retry_after_ms or 0
    if error.http_status is None:
        floor = max(floor, ECHO_GRACE_MS)
    return exponential_backoff_ms(attempts, min_ms=MIN_BACKOFF_MS, max_ms=MAX_BACKOFF_MS, at_least_ms=floor)


@dataclass
class _Job:
    message: Message
    channel: Channel
    psid: str


# The contact's PSID by scalar subqueries: PostgreSQL plans them apart, in a fraction of the time that planning
# a four-table join takes, which was most of this query's cost.
_LOAD = """
SELECT m.id, m.content, m.delivery_state, m.messaging_type, m.message_tag, m.send_state, m.send_attempts,
       m.send_attempt_at, m.notification_token, ch.id, ch.connected, ch.page_token, ch.source_channel_id, ch.source,
       ch.page_id,
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
def _load(message_id: str) -> _Job | None:
    return _load_many([message_id]).get(message_id)


def _load_many(message_ids: list[str]) -> dict[str, _Job]:
    rows = execute(_LOAD, *message_ids, ids=placeholders(len(message_ids))).fetchall()
    return {row[0]: _job(row) for row in rows}


def _job(row: tuple[Any, ...]) -> _Job:
    message_id, content, state, kind, tag, send_state, attempts, attempt_at, notification_token = row[:9]
    channel_id, connected, token, source_channel_id, source, page_id, psid = row[9:]
    message = Message(
        id=message_id,
        content=Message.content.python_value(content),
        delivery_state=state,
        messaging_type=kind,
        message_tag=tag,
        send_state=send_state,
        send_attempts=attempts,
        send_attempt_at=attempt_at,
        notification_token=notification_token,
    )
    channel = Channel(
        id=channel_id,
        connected=bool(connected),
        page_token=token,
        source_channel_id=source_channel_id,
        source=source,
        page_id=page_id,
    )
    return _Job(message, channel, psid)


def _post(graph: GraphClient, job: _Job, content: dict[str, Any] | None = None) -> dict[str, Any]:
    """One Send API call for ``job``: through the account's page for Instagram, as the page for Messenger."""
    channel = job.channel
    body = send_body(job.message, job.psid, content, platform=channel.source)
    if channel.source == INSTAGRAM:
        return graph.send_instagram_message(channel.graph_page_id, channel.page_token or "", body)
    return graph.send_message(channel.page_token, body)


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
    media = is_media(message.content)
    if not throttle.acquire(
        job.channel.source_channel_id, media=media, platform=job.channel.source, before_waiting=release
    ):
        return THROTTLE_RETRY_MS + random.randint(0, THROTTLE_RETRY_MS)
    attempts = message.send_attempts or 0
    started = now_ms()
    if not _claim([job], started):
        return None  # another run of the actor took this attempt (or finished the message); it carries on
    if release is not None:
        release()
    try:
        content = outgoing_content(message.content, job.channel, graph)  # an uploaded file: uploaded once a page
        answer = _post(graph, job, content)
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
        if ordinary and not is_media(job.message.content) and uploaded_media_id(job.message.content) is None:
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
    """Throttling slots for ``jobs``, one request a page (or account): those that got one, and those that did not."""
    by_page: dict[tuple[str, str], list[_Job]] = {}
    for job in jobs:
        by_page.setdefault((job.channel.source, job.channel.source_channel_id), []).append(job)
    deadline = time.monotonic() + throttling.MAX_WAIT_MS / 1000
    slotted: list[_Job] = []
    unslotted: list[_Job] = []
    for (platform, page_id), page_jobs in by_page.items():
        wait_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        taken = throttle.acquire_text(
            page_id, len(page_jobs), platform=platform, max_wait_ms=wait_ms, before_waiting=release
        )
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
        return _post(graph, job)
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
