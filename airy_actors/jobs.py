"""Jobs: actor work that a synchronous endpoint waits for, and that a client can poll with ``jobs.info``.

The database row is the truth. An endpoint creates the job (pending), commits, enqueues its actor with the
job's id only, and waits up to ``AIRY_SYNC_TIMEOUT_MS`` (``api.jobs``). The actor runs the work and records the
outcome in the row (``workers.jobs``); whoever waits is told through the callbacks registered with
:func:`when_ended`, and re-reads the row.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airy_actors.db import write_transaction
from airy_actors.errors import NotFound, Unavailable
from airy_actors.models import Job
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"

JOB_STALE_MS = 60_000  # a pending job untouched this long lost its actor message: enqueue it again
JOB_GIVE_UP_MS = 15 * 60_000  # a job still pending this long after its creation fails
JOB_RETENTION_MS = 24 * 3_600_000  # how long jobs.info can tell the outcome of a job that answered 202

_ended_callbacks: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class Answer:
    """What a synchronous endpoint answers for a job: an HTTP status and a JSON body."""

    status_code: int
    body: dict[str, Any]


def when_ended(callback: Callable[[str], None]) -> None:
    """Registers ``callback(job_id)``, called after a job's end was committed (to wake its waiter).

    The callback must not raise: the outcome is recorded already.
    """
    _ended_callbacks.append(callback)


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
        for callback in _ended_callbacks:
            callback(job_id)
        logger.info("job ended", extra={"job_id": job_id, "kind": job.kind, "status": outcome["status"]})
    return bool(updated)


def forget_job(job_id: str) -> None:
    """Deletes a job that has ended."""
    with write_transaction():
        Job.delete().where((Job.id == job_id) & (Job.status != PENDING)).execute()


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


