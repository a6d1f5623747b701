"""Events that could not be applied: recorded on their own, retried with backoff, then failed, visibly.

A poison event (a value no column can hold, a bug, a shape nobody foresaw) must neither take the other events
of its request down with it nor be retried for ever. The ingestion applies each event in a savepoint; when one
raises, the savepoint is rolled back and a :class:`FailedEvent` row takes note of it, in the same transaction
as the rest of the request. A retry actor applies it again after a backoff, at most :data:`MAX_ATTEMPTS` times
in all (sweeps included), and then the row stays ``failed``: ``POST /events.failed`` lists it and
``POST /events.retry`` tries it once more. The event itself is found again by its position among the parsed
events of its stored request, so nothing of it is copied.
"""

from __future__ import annotations

import logging
from typing import Any

import peewee

from airy_actors.backoff import backoff_ms
from airy_actors.db import is_postgres
from airy_actors.errors import NotFound
from airy_actors.models import FailedEvent, new_id
from airy_actors.pagination import paginate
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 5 * 60_000
MAX_ERROR_LENGTH = 1_000
SWEEP_GRACE_MS = 30_000
RETRYING, FAILED = "retrying", "failed"
WHOLE_REQUEST = -1  # event_index of a request that could not be parsed at all

# Errors that say the database itself is unreachable: the whole batch is retried, no event is blamed.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (peewee.OperationalError, peewee.InterfaceError)


def describe(error: BaseException) -> str:
    """A short, single-line reason for ``error``, safe to show (no traceback)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    reason = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return reason[:MAX_ERROR_LENGTH]


def record(
    webhook_request_id: int,
    event_index: int,
    *,
    page_id: str | None,
    kind: str,
    error: str,
    received_at: int,
    final: bool = False,
) -> str:
    """Takes note of an event that could not be applied, inside the ingestion's transaction.

    Parameters:
      final: the event can never be applied (a value no column can hold): failed at once, no retry.

    Returns:
      The failure's id, for the actor to enqueue its retry after the commit.
    """
    FailedEvent.insert(
        id=new_id(),
        webhook_request_id=webhook_request_id,
        event_index=event_index,
        page_id=(page_id or "")[:255] or None,
        kind=kind[:64],
        error=error[:MAX_ERROR_LENGTH],
        attempts=1,
        status=FAILED if final else RETRYING,
        next_attempt_at=now_ms() + retry_delay_ms(1),
        received_at=received_at,
    ).on_conflict_ignore().execute()
    logger.warning(
        "an event could not be applied",
        extra={"webhook_request_id": webhook_request_id, "kind": kind, "error": error, "final": final},
    )
    # The row may have been there already (a request applied again after a crash): its id either way.
    return FailedEvent.get(
        (FailedEvent.webhook_request_id == webhook_request_id) & (FailedEvent.event_index == event_index)
    ).id


def count_by_status() -> dict[str, int]:
    """How many events are retrying, and how many failed for good (the ``airy_failed_events`` gauge)."""
    counts = FailedEvent.select(FailedEvent.status, peewee.fn.COUNT(FailedEvent.id)).group_by(FailedEvent.status)
    return {RETRYING: 0, FAILED: 0, **dict(counts.tuples())}


def retry_delay_ms(attempts: int) -> int:
    """How long after its ``attempts``-th failed attempt an event is tried again."""
    return backoff_ms(attempts, min_ms=MIN_BACKOFF_MS, max_ms=MAX_BACKOFF_MS)


def claim(failed_event_id: str) -> FailedEvent | None:
    """The failure to retry now, locked, or None when it is gone, failed for good, or being retried elsewhere."""
    query = FailedEvent.select().where((FailedEvent.id == failed_event_id) & (FailedEvent.status == RETRYING))
    return query.for_update().get_or_none() if is_postgres() else query.get_or_none()


def attempt_failed(failure: FailedEvent, error: str) -> None:
    """Counts one more failed attempt: backoff, or ``failed`` once :data:`MAX_ATTEMPTS` are spent."""
    attempts = failure.attempts + 1
    final = attempts >= MAX_ATTEMPTS
    FailedEvent.update(
        attempts=attempts,
        error=error[:MAX_ERROR_LENGTH],
        status=FAILED if final else RETRYING,
        next_attempt_at=now_ms() + retry_delay_ms(attempts),
        updated_at=now_ms(),
    ).where(FailedEvent.id == failure.id).execute()
    if final:
        logger.warning(
            "an event failed for good",
            extra={"failed_event_id": failure.id, "kind": failure.kind, "attempts": attempts, "error": error},
        )


def due_in_ms(failed_event_id: str) -> int | None:
    """How long until the failure's next attempt; None when it is not retrying any more."""
    row = FailedEvent.get_or_none((FailedEvent.id == failed_event_id) & (FailedEvent.status == RETRYING))
    return None if row is None else max(row.next_attempt_at - now_ms(), 0)


def applied(failure: FailedEvent) -> None:
    """The event was applied at last: it leaves the list."""
    FailedEvent.delete().where(FailedEvent.id == failure.id).execute()
    logger.info("a failed event was applied", extra={"failed_event_id": failure.id, "kind": failure.kind})


def stale(limit: int = 500) -> list[str]:
    """Failures due for a retry whose message was lost (a crash, a lost enqueue). Each is left alone a while."""
    cutoff = now_ms() - SWEEP_GRACE_MS
    ids = [
        row.id
        for row in FailedEvent.select(FailedEvent.id)
        .where((FailedEvent.status == RETRYING) & (FailedEvent.next_attempt_at < cutoff))
        .limit(limit)
    ]
    if ids:
        FailedEvent.update(next_attempt_at=now_ms() + 2 * SWEEP_GRACE_MS).where(FailedEvent.id.in_(ids)).execute()
    return ids


def list_failed(*, cursor: str | None, page_size: int) -> dict[str, Any]:
    """The body of ``POST /events.failed``: failed events, most recently failed first."""
    failed = FailedEvent.select().where(FailedEvent.status == FAILED)
    page = paginate(
        failed,
        sort=FailedEvent.updated_at,
        tiebreak=FailedEvent.id,
        cursor=cursor,
        page_size=page_size,
        total=failed.count(),
    )
    return {"data": [failed_event_json(row) for row in page.items], "response_metadata": page.response_metadata()}


def failed_event_json(row: FailedEvent) -> dict[str, Any]:
    """A failed event as the API shows it."""
    return {
        "id": row.id,
        "webhook_request_id": row.webhook_request_id,
        "page_id": row.page_id,
        "kind": row.kind,
        "error": row.error,
        "attempts": row.attempts,
        "received_at": iso_ms(row.received_at),
    }


def retry(failed_event_id: str) -> str:
    """``POST /events.retry``: gives a failed event one more attempt, now.

    Raises:
      NotFound: when there is no such failed event.
    """
    updated = (
        FailedEvent.update(status=RETRYING, attempts=MAX_ATTEMPTS - 1, next_attempt_at=now_ms(), updated_at=now_ms())
        .where((FailedEvent.id == failed_event_id) & (FailedEvent.status == FAILED))
        .execute()
    )
    if not updated:
        raise NotFound(f"id {failed_event_id} is not a failed event")
    return failed_event_id
