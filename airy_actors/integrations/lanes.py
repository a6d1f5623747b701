"""Lanes: one subscription's deliveries for one ordering key, sent one at a time, in order, with a breaker."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import peewee

from airy_actors import db, metrics
from airy_actors.db import write_transaction
from airy_actors.integrations.policy import delivery_policy
from airy_actors.integrations.posting import Attempt, backoff_ms, post_event
from airy_actors.models.integrations import OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

STALE_GRACE_MS = 30_000


@dataclass(frozen=True, order=True)
class Lane:
    """One subscription's deliveries for one ordering key, sent one at a time in event order."""

    subscription_id: str
    ordering_key: str


@dataclass
class LaneRun:
    """What a lane run leaves to its actor: when to run the lane again, and which other lanes to wake."""

    sent: int = 0
    retry_in_ms: int | None = None
    wake: list[Lane] = field(default_factory=list)


def run_lane(
    lane: Lane,
    *,
    client: httpx.Client,
    budget_ms: int = 20_000,
    max_sends: int = 200,
    release_connection: bool = False,
) -> LaneRun:
    """Sends a lane's pending deliveries, oldest event first, while they succeed.

    Stops when the lane is empty, its head is not due or is being sent by another actor, the subscriber
    failed (the run then says when to try again), or the budget is spent (the run asks to continue).

    Parameters:
      release_connection: hand the pooled database connection back while each POST waits on the subscriber
        (an actor's run, whose connection is its own; not a caller's connection context).
    """
    run = LaneRun()
    deadline = now_ms() + budget_ms
    while True:
        subscription = WebhookSubscription.get_or_none(WebhookSubscription.id == lane.subscription_id)
        if subscription is None:
            return run
        probing = subscription.consecutive_failures > 0
        if probing and not _take_probe(subscription):
            return run  # the probe's success, or the sweeper, wakes this lane again
        delivery = _claim_head(lane)
        if delivery is None:
            if probing:  # let another lane with work probe instead
                _release_probe(subscription)
                run.wake = _due_lanes(lane.subscription_id, exclude=lane.ordering_key)
            return run
        attempt = _attempt(client, subscription, delivery, release_connection=release_connection)
        _record(delivery, subscription, attempt)
        if not attempt.delivered and attempt.retryable:
            fresh = WebhookSubscription.get_or_none(WebhookSubscription.id == lane.subscription_id)
            resume_at = max(_head_due_at(lane), fresh.paused_until if fresh else 0)
            run.retry_in_ms = max(0, resume_at - now_ms()) + random.randint(0, 100)
            return run
        run.sent += 1
        if probing:  # the receiver answers again: the lanes that waited on the breaker may go
            run.wake = _due_lanes(lane.subscription_id, exclude=lane.ordering_key)
        if run.sent >= max_sends or now_ms() >= deadline:
            run.retry_in_ms = 0
            return run


def _take_probe(subscription: WebhookSubscription) -> bool:
    """Makes this run the one that tries a paused subscriber; False when it may not send now."""
    now = now_ms()
    taken = (
        WebhookSubscription.update(paused_until=now + delivery_policy().lease_ms)
        .where(
            (WebhookSubscription.id == subscription.id)
            & (WebhookSubscription.consecutive_failures > 0)
            & (WebhookSubscription.paused_until <= now)
        )
        .execute()
    )
    if taken:
        return True
    fresh = WebhookSubscription.get_or_none(WebhookSubscription.id == subscription.id)
    return fresh is not None and fresh.consecutive_failures == 0


def _release_probe(subscription: WebhookSubscription) -> None:
    WebhookSubscription.update(paused_until=now_ms()).where(
        (WebhookSubscription.id == subscription.id) & (WebhookSubscription.consecutive_failures > 0)
    ).execute()


def _claim_head(lane: Lane) -> WebhookDelivery | None:
    """Leases the lane's oldest pending delivery, when it is due and nobody else is sending it."""
    now = now_ms()
    head = (
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.subscription == lane.subscription_id)
            & (WebhookDelivery.ordering_key == lane.ordering_key)
            & (WebhookDelivery.status == "pending")
        )
        .order_by(WebhookDelivery.event_id)
        .first()
    )
    if head is None or head.leased_until > now or head.next_attempt_at > now:
        return None
    claimed = (
        WebhookDelivery.update(leased_until=now + delivery_policy().lease_ms)
        .where(
            (WebhookDelivery.id == head.id)
            & (WebhookDelivery.status == "pending")
            & (WebhookDelivery.leased_until == head.leased_until)
            & (WebhookDelivery.next_attempt_at <= now)
        )
        .execute()
    )
    return head if claimed else None


def _head_due_at(lane: Lane) -> int:
    head = (
        WebhookDelivery.select(WebhookDelivery.next_attempt_at)
        .where(
            (WebhookDelivery.subscription == lane.subscription_id)
            & (WebhookDelivery.ordering_key == lane.ordering_key)
            & (WebhookDelivery.status == "pending")
        )
        .order_by(WebhookDelivery.event_id)
        .first()
    )
    return head.next_attempt_at if head is not None else 0


def _attempt(
    client: httpx.Client, subscription: WebhookSubscription, delivery: WebhookDelivery, *, release_connection: bool
) -> Attempt:
    event = OutboxEvent.get_or_none(OutboxEvent.id == delivery.event_id)
    if event is None:
        return Attempt(None, "the event is no longer stored")
    if release_connection:  # a subscriber may take the whole timeout to answer
        db.release_connection()
    return post_event(client, subscription, event, delivery_id=delivery.id)


def _record(delivery: WebhookDelivery, subscription: WebhookSubscription, attempt: Attempt) -> None:
    """Stores an attempt's outcome on the delivery and on the subscription's circuit breaker."""
    now = now_ms()
    attempts = delivery.attempts + 1
    changes: dict[str, Any] = {
        "attempts": attempts,
        "http_status": attempt.http_status,
        "error": attempt.error,
        "leased_until": 0,
        "last_attempt_at": now,
        "updated_at": now,
    }
    if attempt.delivered:
        changes.update(status="delivered", delivered_at=now)
    elif not attempt.retryable:
        changes.update(status="failed")
    elif now >= delivery.give_up_at:
        changes.update(status="failed", error=f"gave up after {attempts} attempts: {attempt.error}")
    else:
        changes.update(next_attempt_at=now + backoff_ms(attempts, attempt.retry_after_ms))
    with write_transaction():
        WebhookDelivery.update(**changes).where(WebhookDelivery.id == delivery.id).execute()
        where = WebhookSubscription.id == subscription.id
        if attempt.retryable:
            pause = now + backoff_ms(subscription.consecutive_failures + 1, attempt.retry_after_ms)
            if subscription.consecutive_failures:  # this run held the probe: its lease gives way to the backoff
                paused_until: Any = pause
            else:  # sent while the breaker was closed: a probe that another run took meanwhile keeps its lease
                later = WebhookSubscription.paused_until < pause
                paused_until = peewee.Case(None, [(later, pause)], WebhookSubscription.paused_until)
            failures = WebhookSubscription.consecutive_failures + 1  # other lanes fail at the same time
            WebhookSubscription.update(consecutive_failures=failures, paused_until=paused_until).where(where).execute()
        elif subscription.consecutive_failures:  # the receiver answered: close the breaker
            WebhookSubscription.update(consecutive_failures=0, paused_until=0).where(where).execute()
    metrics.INTEGRATOR_DELIVERIES[changes.get("status", "retried")].inc()
    logger.info(
        "webhook delivery attempted",
        extra={
            "subscription_id": subscription.id,
            "delivery_id": delivery.id,
            "status": changes.get("status", "pending"),
            "http_status": attempt.http_status,
            "error": attempt.error,
            "attempts": attempts,
        },
    )


def _due_lanes(subscription_id: str, *, exclude: str | None = None, limit: int = 1000) -> list[Lane]:
    """The subscription's lanes whose head may be sent now."""
    now = now_ms()
    query = (
        WebhookDelivery.select(WebhookDelivery.ordering_key)
        .where(
            (WebhookDelivery.subscription == subscription_id)
            & (WebhookDelivery.status == "pending")
            & (WebhookDelivery.next_attempt_at <= now)
            & (WebhookDelivery.leased_until <= now)
        )
        .distinct()
        .limit(limit)
    )
    return [Lane(subscription_id, row.ordering_key) for row in query if row.ordering_key != exclude]


def stale_lanes(limit: int = 500) -> list[Lane]:
    """Lanes whose head has been due for a while with nobody sending it: a lost message or a crashed actor."""
    now = now_ms()
    cutoff = now - STALE_GRACE_MS
    query = (
        WebhookDelivery.select(WebhookDelivery.subscription, WebhookDelivery.ordering_key)
        .join(WebhookSubscription)
        .where(
            (WebhookDelivery.status == "pending")
            & (WebhookDelivery.next_attempt_at < cutoff)
            & (WebhookDelivery.created_at < cutoff)
            & (WebhookDelivery.leased_until < now)
            & (WebhookSubscription.paused_until < now)
        )
        .distinct()
        .limit(limit)
    )
    return [Lane(row.subscription_id, row.ordering_key) for row in query]
