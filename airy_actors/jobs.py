"""Jobs: actor work that a synchronous endpoint waits for, and that a client can poll with ``jobs.info``.

The database row is the truth. An endpoint creates the job (pending), commits, enqueues its actor with the
job's id only, and waits up to ``AIRY_SYNC_TIMEOUT_MS``. The actor records the outcome in the row, then
pushes a note onto a Redis list that the waiting endpoint blocks on, so the answer leaves as soon as it
exists. The waiter re-reads the row at every wake-up, so a lost note costs one poll interval, never an
answer.

Secrets the actor needs (a page token, a user token) are kept in the row, never in the broker message
(Dramatiq logs a message whole when its actor fails), and are erased when the job ends. ``jobs.info`` shows
the status, the result and the error, never the arguments.

A job answered synchronously is deleted at once (its id never left the server); one answered 202 stays for
:data:`JOB_RETENTION_MS`, for ``jobs.info``. A job never stays pending: transient failures are retried a few
times, then the job fails with a string error; the sweeper re-enqueues jobs whose actor was lost in a crash
(:func:`stale_jobs`) and gives up on those that outlive :data:`JOB_GIVE_UP_MS` (:func:`abandon_expired_jobs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import dramatiq
import redis
import redis.asyncio
from dramatiq.errors import BrokerError
from dramatiq.middleware import CurrentMessage, Retries

from airy_actors.db import database, write_transaction
from airy_actors.errors import AiryError, NotFound, Unavailable
from airy_actors.graph import GraphError
from airy_actors.models import Job
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"

JOB_STALE_MS = 60_000  # a pending job untouched this long lost its actor message: enqueue it again
JOB_GIVE_UP_MS = 15 * 60_000  # a job still pending this long after its creation fails
JOB_RETENTION_MS = 24 * 3_600_000  # how long jobs.info can tell the outcome of a job that answered 202
KEEP_ALIVE_EVERY_MS = 10_000  # how often long-running work tells the sweeper it is alive
NOTE_TTL_S = 60  # a note nobody waited for disappears
POLL_S = 1.0  # the longest a waiter trusts Redis before re-reading the row


@dataclass(frozen=True)
class Answer:
    """What a synchronous endpoint answers for a job: an HTTP status and a JSON body."""

    status_code: int
    body: dict[str, Any]


# --- the row ---------------------------------------------------------------------------------------------


def create_job(kind: str, actor_name: str, arguments: dict[str, Any], secrets: dict[str, str] | None = None) -> str:
    """Stores a pending job and returns its id.

    Parameters:
      kind: what the job does, e.g. ``facebook.connect``.
      actor_name: the actor that runs it; the sweeper enqueues this actor again if the job is lost.
      arguments: what the actor needs to run it (JSON).
      secrets: arguments that are secrets; erased from the row when the job ends.
    """
    with write_transaction():
        job = Job.create(
            kind=kind, actor_name=actor_name, arguments={"values": arguments, "secrets": dict(secrets or {})}
        )
    return job.id


def job_arguments(job: Job) -> dict[str, Any]:
    """The arguments the job was created with, secrets included."""
    stored = job.arguments or {}
    return {**(stored.get("values") or {}), **(stored.get("secrets") or {})}


def get_job(job_id: str) -> Job:
    """Raises NotFound when there is no such job."""
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        raise NotFound(f"job_id {job_id} is not a known job")
    return job


def job_info(job_id: str) -> dict[str, Any]:
    """The body of ``jobs.info``: status, and the result or the error once there is one."""
    job = get_job(job_id)
    info: dict[str, Any] = {"job_id": job.id, "status": job.status}
    if job.status == SUCCEEDED:
        info["result"] = job.result
    elif job.status == FAILED:
        info["error"] = job.error
    return info


def answer(job: Job) -> Answer:
    """What the synchronous endpoint answers for ``job`` as it stands."""
    if job.status == SUCCEEDED:
        return Answer(200, job.result)
    if job.status == FAILED:
        return Answer(job.error_status or 500, {"message": job.error or "the job failed"})
    return Answer(202, {"job_id": job.id, "status": PENDING})


def touch(job_id: str) -> Job | None:
    """Marks a pending job as being worked on now. Returns it, or None when it is unknown or has ended."""
    with write_transaction():
        updated = Job.update(updated_at=now_ms()).where((Job.id == job_id) & (Job.status == PENDING)).execute()
        return Job.get_or_none(Job.id == job_id) if updated else None


def keep_alive(job_id: str) -> None:
    """Touches the job at most every KEEP_ALIVE_EVERY_MS, so long fan-outs are not taken for lost ones."""
    from airy_actors.broker import broker

    try:
        first = broker.client.set(f"{broker.namespace}:job-alive:{job_id}", "1", nx=True, px=KEEP_ALIVE_EVERY_MS)
    except redis.RedisError:
        first = True  # without Redis, the database says it
    if first:
        touch(job_id)


def succeed(job_id: str, result: dict[str, Any]) -> bool:
    """Records the job's result. Returns False when it had already ended (a redelivered message)."""
    return _end(job_id, status=SUCCEEDED, result=result)


def fail(job_id: str, error: str, status_code: int) -> bool:
    """Records why the job failed and the HTTP status its endpoint answers. False when it had already ended."""
    return _end(job_id, status=FAILED, error=error, error_status=status_code)


def _end(job_id: str, **outcome: Any) -> bool:
    with write_transaction():
        job = Job.get_or_none(Job.id == job_id)
        if job is None or job.status != PENDING:
            return False
        values = (job.arguments or {}).get("values") or {}
        updated = (
            Job.update(**outcome, arguments={"values": values, "secrets": {}}, updated_at=now_ms())
            .where((Job.id == job_id) & (Job.status == PENDING))
            .execute()
        )
    if updated:
        _notify(job_id)
        logger.info("job ended", extra={"job_id": job_id, "kind": job.kind, "status": outcome["status"]})
    return bool(updated)


def _note_key(namespace: str, job_id: str) -> str:
    return f"{namespace}:job-done:{job_id}"


def _notify(job_id: str) -> None:
    from airy_actors.broker import broker

    key = _note_key(broker.namespace, job_id)
    try:
        broker.client.pipeline(transaction=False).rpush(key, "1").expire(key, NOTE_TTL_S).execute()
    except redis.RedisError:  # the waiter polls the row as well
        logger.warning("could not notify the end of a job", extra={"job_id": job_id})


def forget_job(job_id: str) -> None:
    """Deletes a job that has ended."""
    with write_transaction():
        Job.delete().where((Job.id == job_id) & (Job.status != PENDING)).execute()


# --- the sweeper's side ----------------------------------------------------------------------------------


def stale_jobs(limit: int = 200) -> list[tuple[str, str]]:
    """Pending jobs nobody has worked on for JOB_STALE_MS: their message was lost in a crash.

    They are touched, so the next sweeps leave them alone while their new message waits in the queue.

    Returns:
      (job id, actor name) pairs to enqueue again.
    """
    cutoff = now_ms() - JOB_STALE_MS
    with write_transaction():
        rows = list(
            Job.select(Job.id, Job.actor_name)
            .where((Job.status == PENDING) & (Job.updated_at < cutoff))
            .order_by(Job.created_at)
            .limit(limit)
        )
        if rows:
            Job.update(updated_at=now_ms()).where(Job.id.in_([row.id for row in rows])).execute()
    return [(row.id, row.actor_name) for row in rows]


def delete_old_jobs(limit: int = 500) -> int:
    """Deletes jobs that ended more than JOB_RETENTION_MS ago: clients poll soon after a 202, not days later."""
    cutoff = now_ms() - JOB_RETENTION_MS
    with write_transaction():
        old = Job.select(Job.id).where((Job.status != PENDING) & (Job.updated_at < cutoff)).limit(limit)
        return Job.delete().where(Job.id.in_([row.id for row in old])).execute()


def abandon_expired_jobs() -> int:
    """Fails the jobs that have been pending for more than JOB_GIVE_UP_MS. Returns how many."""
    cutoff = now_ms() - JOB_GIVE_UP_MS
    expired = [row.id for row in Job.select(Job.id).where((Job.status == PENDING) & (Job.created_at < cutoff))]
    for job_id in expired:
        fail(job_id, "the job did not finish in time; try again", Unavailable.status_code)
    return len(expired)


# --- the actor's side ------------------------------------------------------------------------------------


def is_last_attempt() -> bool:
    """Whether the message being processed will not be retried if it fails (True outside a worker)."""
    from airy_actors.broker import broker

    message = CurrentMessage.get_current_message()
    if message is None:
        return True
    actor = broker.get_actor(message.actor_name)
    default = next((m.max_retries for m in broker.middleware if isinstance(m, Retries)), 0)
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", default))
    return message.options.get("retries", 0) >= max_retries


def run_job(job_id: str, work: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Runs one attempt of a job's work and records its outcome.

    A transient Graph error (timeout, 5xx, throttling) raises :class:`dramatiq.Retry`, so the message is
    retried with backoff, except on the last attempt, where the job fails with 503. Facebook refusing the
    request fails it at once with 400 and Facebook's reason; any :class:`AiryError` with its status.

    Parameters:
      job_id: the job.
      work: called with the job's arguments; returns the result, or None when the job will be finished
        elsewhere (a fan-out whose last member finishes it).
    """
    job = touch(job_id)
    if job is None:
        return  # ended already: a redelivery, or the sweeper's copy of a job that was only slow
    last = is_last_attempt()
    try:
        result = work(job_arguments(job))
    except GraphError as error:
        if error.retryable and not last:
            logger.info("job will be retried", extra={"job_id": job_id, "kind": job.kind, "graph": error.kind.value})
            raise dramatiq.Retry(error.message, delay=error.retry_after_ms) from None
        client_error = error.as_client_error()
        fail(job_id, client_error.message, client_error.status_code)
    except AiryError as error:
        fail(job_id, error.message, error.status_code)
    except Exception:
        if not last:
            raise
        logger.exception("job failed", extra={"job_id": job_id, "kind": job.kind})
        fail(job_id, "internal error; it has been logged", 500)
    else:
        if result is not None:
            succeed(job_id, result)


# --- the endpoint's side ---------------------------------------------------------------------------------


def submit(kind: str, actor: dramatiq.Actor, arguments: dict[str, Any], secrets: dict[str, str] | None) -> str:
    """Creates a job, commits, and enqueues ``actor`` with its id. Call with a database connection.

    Raises:
      Unavailable: when the broker refuses the message; the job is then failed, not left behind.
    """
    job_id = create_job(kind, actor.actor_name, arguments, secrets)
    try:
        actor.send(job_id)
    except (BrokerError, redis.RedisError):
        logger.warning("could not enqueue a job", extra={"job_id": job_id, "kind": kind})
        fail(job_id, "the message broker is unavailable; try again", Unavailable.status_code)
        raise Unavailable("the message broker is unavailable; try again") from None
    return job_id


async def submit_and_wait(
    kind: str,
    actor: dramatiq.Actor,
    arguments: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    timeout_ms: int,
) -> Answer:
    """Runs ``actor`` as a job and waits for it up to ``timeout_ms``: the body of a synchronous endpoint.

    Returns:
      200 and the result; the job's error status and ``{"message"}``; or 202 and the job id to poll.
    """
    job_id = await anyio.to_thread.run_sync(_in_database, submit, kind, actor, arguments, secrets)
    job = await wait_for_job(job_id, timeout_ms)
    if job.status != PENDING:
        # The client never saw this job's id: nobody will ask for it.
        await anyio.to_thread.run_sync(_in_database, forget_job, job_id)
    return answer(job)


async def wait_for_job(job_id: str, timeout_ms: int) -> Job:
    """Waits until the job ends or ``timeout_ms`` passes, and returns the row as it then stands."""
    from airy_actors.broker import broker
    from airy_actors.config import get_settings

    deadline = time.monotonic() + timeout_ms / 1000
    key = _note_key(broker.namespace, job_id)
    url = get_settings().redis_url
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2) if url else None
    listening = client is not None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                listening = await _wait_for_note(client if listening else None, key, min(remaining, POLL_S))
            job = await anyio.to_thread.run_sync(_in_database, get_job, job_id)
            if job.status != PENDING or deadline - time.monotonic() <= 0:
                return job
    finally:
        if client is not None:
            await client.aclose()


async def _wait_for_note(client: redis.asyncio.Redis | None, key: str, timeout_s: float) -> bool:
    """Waits for the note of the job's end, or ``timeout_s``. Returns False when Redis cannot be used."""
    if client is not None:
        try:
            # BLPOP takes fractional seconds; 0 would mean forever.
            await client.blpop([key], timeout=max(timeout_s, 0.01))
            return True
        except redis.RedisError:
            logger.warning("cannot wait on Redis for a job; polling the database instead")
    await anyio.sleep(min(timeout_s, 0.05))
    return False


def _in_database(function: Callable[..., Any], *args: Any) -> Any:
    with database.connection_context():
        return function(*args)
