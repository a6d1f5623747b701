"""The delivery policy (timeouts, backoff, retention) and this process's HTTP client for deliveries."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeouts, backoff and retention of deliveries. Durations in milliseconds."""

    connect_timeout_ms: int = 5_000
    timeout_ms: int = 10_000
    min_backoff_ms: int = 1_000
    max_backoff_ms: int = 15 * 60_000
    max_retry_after_ms: int = 60 * 60_000
    give_up_after_ms: int = 24 * 3_600_000
    # Longer than a lane actor can run (its time limit is 120 s): a live sender never loses its lease.
    lease_ms: int = 150_000
    retention_ms: int = 7 * 24 * 3_600_000


_policy = DeliveryPolicy()
_client: httpx.Client | None = None
_client_lock = threading.Lock()


def delivery_policy() -> DeliveryPolicy:
    return _policy


def get_delivery_client() -> httpx.Client:
    """This process's HTTP client for deliveries, with the policy's timeouts; redirects are not followed."""
    global _client
    with _client_lock:
        if _client is None:
            timeout = httpx.Timeout(_policy.timeout_ms / 1000, connect=_policy.connect_timeout_ms / 1000)
            _client = httpx.Client(
                timeout=timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                headers={"User-Agent": "airy-actors-webhooks"},
            )
        return _client


def use_delivery_policy(policy: DeliveryPolicy) -> None:
    """Replaces this process's delivery policy, and the client built from it (tests, tuning)."""
    global _policy, _client
    with _client_lock:
        _policy = policy
        if _client is not None:
            _client.close()
        _client = None
