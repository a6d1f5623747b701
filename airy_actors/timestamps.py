"""Time as the product speaks it: epoch milliseconds inside, ISO-8601 UTC with milliseconds outside."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Returns the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def iso_ms(epoch_ms: int | None) -> str | None:
    """Formats epoch milliseconds as ``2021-02-02T10:00:00.000Z``; ``None`` stays ``None``."""
    if epoch_ms is None:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
