"""The endpoint's side of jobs: run an actor as a job and wait for its end, up to ``AIRY_SYNC_TIMEOUT_MS``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import dramatiq
import redis
import redis.asyncio
from dramatiq.errors import BrokerError
from starlette.requests import Request

from airy_actors import jobs
from airy_actors.config import get_settings
from airy_actors.db import database
from airy_actors.errors import Unavailable
from airy_actors.models import Job
from api.responses import JSONResponse
from workers.jobs import note_key

logger = logging.getLogger(__name__)

SYNCHRONOUS = (  # how the document describes a synchronous endpoint
    "The work runs in an actor; the endpoint waits for it up to AIRY_SYNC_TIMEOUT_MS, then answers 202 with a "
    "job to poll with `jobs.info`. A failed job answers its error (400 with Facebook's reason, 503 when Facebook "
    "is unreachable)."
)

POLL_S = 1.0  # the longest a waiter trusts Redis before re-reading the row


def submit(kind: str, actor: dramatiq.Actor, arguments: dict[str, Any], secrets: dict[str, str] | None) -> str:
    """Creates a job, commits, and enqueues ``actor`` with its id. Call with a database connection.

    Raises:
      Unavailable: when the broker refuses the message; the job is then failed, not left behind.
    """
    job_id = jobs.create_job(kind, actor.actor_name, arguments, secrets)
    try:
        actor.send(job_id)
    except (BrokerError, redis.RedisError):
        logger.warning("could not enqueue a job", extra={"job_id": job_id, "kind": kind})
        jobs.fail(job_id, "the message broker is unavailable; try again", Unavailable.status_code)
        raise Unavailable("the message broker is unavailable; try again") from None
    return job_id


async def submit_and_wait(
    request: Request,
    kind: str,
    actor: dramatiq.Actor,
    arguments: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
) -> JSONResponse:
    """Runs ``actor`` as a job and waits for it up to ``AIRY_SYNC_TIMEOUT_MS``: the body of a synchronous endpoint.

    Returns:
      200 and the result; the job's error status and ``{"message"}``; or 202 and the job id to poll.
    """
    timeout_ms = request.app.state.settings.sync_timeout_ms
    job_id = await anyio.to_thread.run_sync(_in_database, submit, kind, actor, arguments, secrets)
    job = await wait_for_job(job_id, timeout_ms)
    if job.status != jobs.PENDING:
        # The client never saw this job's id: nobody will ask for it.
        await anyio.to_thread.run_sync(_in_database, jobs.forget_job, job_id)
    answer = jobs.answer(job)
    return JSONResponse(answer.body, status_code=answer.status_code)


async def wait_for_job(job_id: str, timeout_ms: int) -> Job:
    """Waits until the job ends or ``timeout_ms`` passes, and returns the row as it then stands."""
    deadline = time.monotonic() + timeout_ms / 1000
    key = note_key(job_id)
    url = get_settings().redis_url
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=2) if url else None
    listening = client is not None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                listening = await _wait_for_note(client if listening else None, key, min(remaining, POLL_S))
            job = await anyio.to_thread.run_sync(_in_database, jobs.get_job, job_id)
            if job.status != jobs.PENDING or deadline - time.monotonic() <= 0:
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
