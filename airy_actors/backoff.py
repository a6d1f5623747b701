"""The one backoff: exponential growth with jitter, never shorter than what the other side asked for."""

from __future__ import annotations

import random

MAX_DOUBLINGS = 30  # past this the ceiling is reached anyway; keeps 2**n small


def backoff_ms(
    attempts: int, *, min_ms: int, max_ms: int, at_least_ms: int | None = None, jitter: str = "full"
) -> int:
    """The delay before the next attempt, after ``attempts`` failed ones.

    Parameters:
      attempts: how many attempts failed so far (1 after the first).
      min_ms, max_ms: the first delay's floor and every delay's ceiling.
      at_least_ms: a floor asked for by the other side (``Retry-After``) or by the caller.
      jitter: ``"full"`` (uniform between min_ms and the ceiling: many clients spread out) or ``"equal"`` (the
        upper half of the ceiling: never much shorter than planned).
    """
    ceiling = min(max_ms, min_ms * 2 ** min(max(attempts - 1, 0), MAX_DOUBLINGS))
    ceiling = max(ceiling, min_ms)
    if jitter == "equal":
        delay = ceiling // 2 + random.randint(0, ceiling - ceiling // 2)
    else:
        delay = random.randint(min_ms, ceiling)
    return max(delay, at_least_ms or 0)
