"""The delivery policy (timeouts, backoff, retention) and this process's HTTP client for deliveries."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import httpx

from airy_actors.config import get_settings
from airy_actors.integrations.transport import guarded_client

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


_policy: DeliveryPolicy | None = None  # built from the settings on first use
_client: httpx.Client | None = None
_client_lock = threading.Lock()


def delivery_policy() -> DeliveryPolicy:
    """This process's policy: the defaults, with ``AIRY_DELIVERY_TIMEOUT_MS`` as each attempt's total deadline."""
    global _policy
    if _policy is None:
        _policy = DeliveryPolicy(timeout_ms=get_settings().delivery_timeout_ms)
    return _policy


def get_delivery_client() -> httpx.Client:
    """This process's HTTP client for deliveries.

    It connects only to addresses the target rules allow, checked after each resolution (no DNS rebinding),
    gives each attempt one total deadline (a receiver dripping bytes is cut), and never follows a redirect.
    """
    global _client
    policy = delivery_policy()
    with _client_lock:
        if _client is None:
            _client = guarded_client(
                allow_private=get_settings().webhooks_allow_private,
                deadline_ms=policy.timeout_ms,
                connect_timeout_ms=policy.connect_timeout_ms,
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
