"""Deliveries as history: listing, replay, giving up after the policy's time, and pruning old ones."""

from __future__ import annotations

import logging
from typing import Any

import peewee

from airy_actors.db import write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.integrations.lanes import STALE_GRACE_MS, Lane
from airy_actors.integrations.policy import delivery_policy
from airy_actors.integrations.subscriptions import get_subscription
from airy_actors.models.integrations import OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.pagination import paginate
from airy_actors.stream_listeners import STREAM_WINDOW_MS
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)


def list_deliveries(subscription_id: str, *, cursor: str | None, page_size: int) -> dict[str, Any]:
    """A subscription's deliveries, newest event first, with the outcome of their last attempt."""
    get_subscription(subscription_id)
    query = WebhookDelivery.select().where(WebhookDelivery.subscription == subscription_id)
    page = paginate(
        query,
        sort=WebhookDelivery.event_id,
        tiebreak=WebhookDelivery.id,
        cursor=cursor,
        page_size=page_size,
        total=query.count(),
    )
    return {"data": [delivery_json(d) for d in page.items], "response_metadata": page.response_metadata()}


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "subscription_id": delivery.subscription_id,
        "event_id": str(delivery.event_id),
        "type": delivery.type,
        "ordering_key": delivery.ordering_key,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "http_status": delivery.http_status,
        "error": delivery.error,
        "created_at": iso_ms(delivery.created_at),
        "last_attempt_at": iso_ms(delivery.last_attempt_at),
        "next_attempt_at": iso_ms(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "delivered_at": iso_ms(delivery.delivered_at),
    }


def replay(delivery_id: str) -> tuple[dict[str, Any], Lane]:
    """Makes a failed delivery pending again, with a fresh day of retries.

    It is sent before the later events of its lane that are still pending; later events that were already
    delivered are not sent again, so a replayed event arrives after them.

    Raises:
      NotFound: for an unknown delivery.
      BadRequest: when the delivery is not failed.
    """
    now = now_ms()
    with write_transaction():
        delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
        if delivery is None:
            raise NotFound(f"delivery {delivery_id} does not exist")
        if delivery.status != "failed":
            raise BadRequest(f"delivery_id: delivery {delivery_id} is {delivery.status}; only failed ones are replayed")
        WebhookDelivery.update(
            status="pending",
            attempts=0,
            next_attempt_at=0,
            leased_until=0,
            give_up_at=now + delivery_policy().give_up_after_ms,
            updated_at=now,
        ).where(WebhookDelivery.id == delivery_id).execute()
        delivery = WebhookDelivery.get_by_id(delivery_id)
    return delivery_json(delivery), Lane(delivery.subscription_id, delivery.ordering_key)


def give_up_overdue(limit: int = 1000) -> int:
    """Gives up the pending deliveries past their deadline of subscriptions that keep failing.

    Behind a failing receiver's breaker only one lane is tried at a time, so without this a backlog would be
    given up one delivery per backoff. A healthy subscription's overdue deliveries are still sent.

    Returns:
      How many deliveries were given up.
    """
    now = now_ms()
    failing = WebhookSubscription.select(WebhookSubscription.id).where(WebhookSubscription.consecutive_failures > 0)
    overdue = (
        WebhookDelivery.select(WebhookDelivery.id)
        .where(
            (WebhookDelivery.status == "pending")
            & (WebhookDelivery.give_up_at < now)
            & (WebhookDelivery.leased_until < now)
            & WebhookDelivery.subscription.in_(failing)
        )
        .limit(limit)
    )
    ids = [row.id for row in overdue]
    if not ids:
        return 0
    return (
        WebhookDelivery.update(
            status="failed",
            error="gave up: the receiver kept failing past the delivery's deadline",
            updated_at=now,
        )
        .where(
            WebhookDelivery.id.in_(ids) & (WebhookDelivery.status == "pending") & (WebhookDelivery.leased_until < now)
        )
        .execute()
    )


def prune(limit: int = 1000) -> int:
    """Deletes finished deliveries older than the retention, and events nobody needs any more.

    An event is kept while a delivery refers to it, and at least the event stream's window (24 hours) after
    it was written, for stream clients that reconnect. The newest event is always kept: SQLite reuses the
    highest id once it is deleted, and subscriptions compare ids (``start_after_event_id``).

    Returns:
      How many rows were deleted.
    """
    now = now_ms()
    old = (
        WebhookDelivery.select(WebhookDelivery.id)
        .where(
            (WebhookDelivery.status != "pending") & (WebhookDelivery.updated_at < now - delivery_policy().retention_ms)
        )
        .limit(limit)
    )
    deleted = WebhookDelivery.delete().where(WebhookDelivery.id.in_([row.id for row in old])).execute()
    newest = OutboxEvent.select(peewee.fn.MAX(OutboxEvent.id)).scalar() or 0
    unused = (
        OutboxEvent.select(OutboxEvent.id)
        .join(WebhookDelivery, peewee.JOIN.LEFT_OUTER, on=(WebhookDelivery.event_id == OutboxEvent.id))
        .where(
            WebhookDelivery.id.is_null()
            & (OutboxEvent.dispatched_at < now - STALE_GRACE_MS)
            & (OutboxEvent.timestamp < now - STREAM_WINDOW_MS)
            & (OutboxEvent.id < newest)
        )
        .limit(limit)
    )
    ids = [row.id for row in unused]
    if ids:
        deleted += OutboxEvent.delete().where(OutboxEvent.id.in_(ids)).execute()
    return deleted
