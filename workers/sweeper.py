"""The sweeper: re-enqueues work that a crash or a lost broker message left behind.

The database is the record of what must happen; Redis only carries the news. Each sweep asks every
registered finder for stale work and enqueues it again. The actors are idempotent, so work that was merely
slow is done once more at worst. Each actor module registers the sweeps of its own work with
:func:`register_sweep`; this module knows none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq

from workers import queues
from workers.broker import broker  # noqa: F401  (binds the actor below to the configured broker)
from workers.scheduler import periodic

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_MS = 10_000

Sweep = Callable[[], int]
_sweeps: list[Sweep] = []


def register_sweep(sweep: Sweep) -> Sweep:
    """Adds a function that re-enqueues one kind of stale work and returns how many items it enqueued."""
    _sweeps.append(sweep)
    return sweep


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
@dramatiq.actor(queue_name=queues.MAINTENANCE, max_retries=0, time_limit=60_000)
def sweep() -> None:
    """Re-enqueues stale work of every kind."""
    counts = run_sweeps()
    if any(counts.values()):
        logger.info("swept stale work", extra=counts)
