"""Time as the product speaks it: epoch milliseconds inside, ISO-8601 UTC with milliseconds outside."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


def now_ms() -> int:
    """Returns the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


# What ISO-8601 with four-digit years can show: 0001-01-01 up to the last millisecond of 9999.
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


def is_showable(epoch_ms: int) -> bool:
    """Whether ``epoch_ms`` is a time that :func:`iso_ms` can write (and a column of epoch ms can hold)."""
    return MIN_MS <= epoch_ms <= MAX_MS


def iso_ms(epoch_ms: int | None) -> str | None:
    """Formats epoch milliseconds as ``2021-02-02T10:00:00.000Z``; ``None`` stays ``None``.

    A time outside years 1 to 9999, which only an earlier version could have stored, is shown clamped to
    that range rather than failing every read that meets it.
    """
    if epoch_ms is None:
        return None
    epoch_ms = min(max(int(epoch_ms), MIN_MS), MAX_MS)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"
