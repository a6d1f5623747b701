"""The record of event stream listeners: when a client last connected to ``GET /events.stream``.

The outbox writes an event only when someone may want it. A stream client reconnecting with ``Last-Event-ID``
must get everything it missed within :data:`STREAM_WINDOW_MS`, so while a client has connected within that
window every event type is written, and outbox events are kept at least that long (``integrations.prune``).
The record is one database row, so that every process of every host sees it; a web process refreshes it at
most every :data:`RECORD_EVERY_MS` while it has clients connected.
"""

from __future__ import annotations

import threading
import time

from airy_actors.models.integrations import EventStreamListener
from airy_actors.timestamps import now_ms

STREAM_WINDOW_MS = 24 * 3_600_000
RECORD_EVERY_MS = 5_000
LISTENER_ROW = 1

_lock = threading.Lock()
_recorded_at = float("-inf")  # monotonic seconds of this process's last write of the record


def record_listener() -> bool:
    """Records that a stream client is connected now; writes at most every :data:`RECORD_EVERY_MS` a process.

    Returns:
      Whether no client had connected within the window before: the caller then waits for the processes'
      cached answers (``outbox.SUBSCRIPTIONS_CACHE_MS``) to learn that every event type is now wanted.
    """
    global _recorded_at
    started = time.monotonic()
    with _lock:
        if started - _recorded_at < RECORD_EVERY_MS / 1000:
            return False
        _recorded_at = started
    now = now_ms()
    fresh = not listened_since(now - STREAM_WINDOW_MS)
    (
        EventStreamListener.insert(id=LISTENER_ROW, last_connected_at=now)
        .on_conflict(conflict_target=[EventStreamListener.id], update={EventStreamListener.last_connected_at: now})
        .execute()
    )
    return fresh


def listened_since(cutoff_ms: int) -> bool:
    """Whether a stream client connected at or after ``cutoff_ms``."""
    last = EventStreamListener.select(EventStreamListener.last_connected_at).where(
        EventStreamListener.id == LISTENER_ROW
    )
    value = last.scalar()
    return value is not None and value >= cutoff_ms


def forget_recording() -> None:
    """Makes this process's next :func:`record_listener` write the record (tests that empty the database)."""
    global _recorded_at
    with _lock:
        _recorded_at = float("-inf")
