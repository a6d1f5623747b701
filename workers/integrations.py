"""Actors that carry outbox events to integrators' webhooks: the drain, and the lanes that deliver in order."""

from __future__ import annotations

import logging
import time

import dramatiq
import redis
from dramatiq.errors import BrokerError

from airy_actors import integrations, outbox
from airy_actors.integrations import Lane
from workers import queues
from workers.broker import broker  # noqa: F401  (binds the actors below to the configured broker)
from workers.scheduler import periodic
from workers.sweeper import register_sweep

logger = logging.getLogger(__name__)

DRAIN_INTERVAL_MS = 1_000
MAX_DRAIN_BATCHES = 20
PRUNE_BATCH = 1_000
PRUNE_BUDGET_S = 5.0


@periodic(interval_ms=DRAIN_INTERVAL_MS)
@dramatiq.actor(queue_name=queues.DELIVERIES, max_retries=0, time_limit=60_000)
def drain_outbox() -> None:
    """Fans committed outbox events out to subscriptions and starts their lanes.

    Enqueued after every commit that wrote an event, and every second in case such an enqueue was lost.
    """
    for _ in range(MAX_DRAIN_BATCHES):
        lanes, more = integrations.drain_outbox()
        for lane in lanes:
            start_lane(lane)
        if not more:
            return


@dramatiq.actor(queue_name=queues.DELIVERIES, max_retries=3, min_backoff=1_000, max_backoff=30_000, time_limit=120_000)
def deliver_webhooks(subscription_id: str, ordering_key: str) -> None:
    """Sends one lane's pending deliveries in order; runs again later when the subscriber failed."""
    lane = Lane(subscription_id, ordering_key)
    run = integrations.run_lane(lane, client=integrations.get_delivery_client(), release_connection=True)
    for other in run.wake:
        start_lane(other)
    if run.retry_in_ms is not None:
        start_lane(lane, delay_ms=run.retry_in_ms)


def request_drain() -> None:
    """Enqueues a drain now: the outbox's trigger after every commit that wrote events."""
    drain_outbox.send()


outbox.when_written(request_drain)


def start_lane(lane: Lane, *, delay_ms: int = 0) -> None:
    """Enqueues a lane's actor; a lost enqueue is made good by the sweeper, so a broker error is only logged."""
    try:
        deliver_webhooks.send_with_options(args=(lane.subscription_id, lane.ordering_key), delay=delay_ms or None)
    except (BrokerError, redis.RedisError) as exc:
        logger.warning("could not enqueue a webhook lane", extra={"error": type(exc).__name__})


@register_sweep
def sweep_webhook_lanes() -> int:
    lanes = integrations.stale_lanes()
    for lane in lanes:
        start_lane(lane)
    return len(lanes)


@register_sweep
def give_up_overdue_webhooks() -> int:
    return integrations.give_up_overdue()


@register_sweep
def prune_webhook_history() -> int:
    """Prunes batch after batch until nothing is due or :data:`PRUNE_BUDGET_S` has passed.

    One batch a sweep would fall behind a host that writes more events between two sweeps than a batch holds
    (a stream client makes every change an event); the budget leaves the sweep's other work its turn.
    """
    deadline = time.monotonic() + PRUNE_BUDGET_S
    pruned = 0
    while True:
        deleted = integrations.prune(PRUNE_BATCH)
        pruned += deleted
        if deleted < PRUNE_BATCH or time.monotonic() >= deadline:
            return pruned
