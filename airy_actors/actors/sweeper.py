"""The sweeper: re-enqueues work that a crash or a lost broker message left behind.

The database is the record of what must happen; Redis only carries the news. Each sweep asks every
registered finder for stale work and enqueues it again. The actors are idempotent, so work that was merely
slow is done once more at worst.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq

from airy_actors import ingestion
from airy_actors.actors.ingestion import fetch_contact_profile, ingest_webhook_event
from airy_actors.models import Contact
from airy_actors.scheduler import periodic
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_MS = 10_000
PROFILE_RETRY_AFTER_MS = 5 * 60_000

Sweep = Callable[[], int]
_sweeps: list[Sweep] = []


def register_sweep(sweep: Sweep) -> Sweep:
    """Adds a function that re-enqueues one kind of stale work and returns how many items it enqueued."""
    _sweeps.append(sweep)
    return sweep


@register_sweep
def sweep_webhook_events() -> int:
    ids = ingestion.stale_webhook_events()
    for webhook_event_id in ids:
        ingest_webhook_event.send(webhook_event_id)
    return len(ids)


@register_sweep
def sweep_contact_profiles() -> int:
    cutoff = now_ms() - PROFILE_RETRY_AFTER_MS
    stale = (
        Contact.select(Contact.id)
        .where(
            (Contact.profile_state == "pending")
            & (Contact.created_at < cutoff)
            & (Contact.created_at > cutoff - 86_400_000)
        )
        .limit(200)
    )
    ids = [contact.id for contact in stale]
    for contact_id in ids:
        fetch_contact_profile.send(contact_id)
    return len(ids)


def run_sweeps() -> dict[str, int]:
    """Runs every registered sweep once. Returns what each re-enqueued."""
    counts = {}
    for sweep in _sweeps:
        try:
            counts[sweep.__name__] = sweep()
        except Exception:  # one broken sweep must not stop the others
            logger.exception("sweep failed", extra={"sweep": sweep.__name__})
    return counts


@periodic(interval_ms=SWEEP_INTERVAL_MS)
@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=60_000)
def sweep() -> None:
    """Re-enqueues stale work of every kind."""
    counts = run_sweeps()
    if any(counts.values()):
        logger.info("swept stale work", extra=counts)
