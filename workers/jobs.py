"""The worker's side of jobs: running one attempt of a job's work, and telling its waiter that it ended.

The waiting endpoint (``api.jobs``) blocks on a Redis list named by :func:`note_key`; when a job ends, a note is
pushed there so the answer leaves as soon as it exists. A lost note costs the waiter one poll of the row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from airy_actors import jobs
from airy_actors.errors import AiryError
from airy_actors.graph import GraphError
from workers.attempts import is_last_attempt
from workers.broker import broker

logger = logging.getLogger(__name__)

NOTE_TTL_S = 60  # a note nobody waited for disappears
# The retries of a job's actor: a client is waiting, so few retries and short backoffs (about 1.5 s in all).
JOB_RETRIES: dict[str, Any] = {"max_retries": 2, "min_backoff": 500, "max_backoff": 2_000}


def note_key(job_id: str) -> str:
    """The Redis list that a job's waiter blocks on."""
    return f"{broker.namespace}:job-done:{job_id}"


def notify(job_id: str) -> None:
    """Pushes the note of a job's end. Never raises: the waiter polls the row as well."""
    key = note_key(job_id)
    try:
        broker.client.pipeline(transaction=False).rpush(key, "1").expire(key, NOTE_TTL_S).execute()
    except redis.RedisError:
        logger.warning("could not notify the end of a job", extra={"job_id": job_id})


jobs.when_ended(notify)


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
    job = jobs.touch(job_id)
    if job is None:
        return  # ended already: a redelivery, or the sweeper's copy of a job that was only slow
    last = is_last_attempt()
    try:
        result = work(jobs.job_arguments(job))
    except GraphError as error:
        if error.retryable and not last:
            logger.info("job will be retried", extra={"job_id": job_id, "kind": job.kind, "graph": error.kind.value})
            raise dramatiq.Retry(error.message, delay=error.retry_after_ms) from None
        client_error = error.as_client_error()
        jobs.fail(job_id, client_error.message, client_error.status_code)
    except AiryError as error:
        jobs.fail(job_id, error.message, error.status_code)
    except Exception:
        if not last:
            raise
        logger.exception("job failed", extra={"job_id": job_id, "kind": job.kind})
        jobs.fail(job_id, "internal error; it has been logged", 500)
    else:
        if result is not None:
            jobs.succeed(job_id, result)
