"""The fan-out: outbox events become one delivery per subscription that wants them, grouped in lanes."""

from __future__ import annotations

import logging

from airy_actors.db import is_postgres, write_transaction
from airy_actors.integrations.lanes import Lane
from airy_actors.integrations.policy import delivery_policy
from airy_actors.models import new_id
from airy_actors.models.integrations import OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)


def drain_outbox(limit: int = 500) -> tuple[list[Lane], bool]:
    """Fans undispatched outbox events out to the subscriptions that want them, oldest first.

    Safe to run concurrently and twice: a delivery is unique per subscription and event.

    Returns:
      The lanes that received deliveries, and whether more events are waiting.
    """
    with write_transaction():
        query = (
            OutboxEvent.select(OutboxEvent.id, OutboxEvent.type, OutboxEvent.ordering_key)
            .where(OutboxEvent.dispatched_at.is_null())
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
        if is_postgres():
            query = query.for_update(skip_locked=True)  # two drains split the work instead of doubling it
        events = list(query)
        if not events:
            return [], False
        subscriptions = list(
            WebhookSubscription.select(
                WebhookSubscription.id, WebhookSubscription.events, WebhookSubscription.start_after_event_id
            )
        )
        now = now_ms()
        policy = delivery_policy()
        rows, lanes = [], set()
        for event in events:
            for subscription in subscriptions:
                if event.id <= subscription.start_after_event_id:
                    continue
                if subscription.events is not None and event.type not in subscription.events:
                    continue
                rows.append(
                    {
                        "id": new_id(),
                        "subscription": subscription.id,
                        "event_id": event.id,
                        "type": event.type,
                        "ordering_key": event.ordering_key,
                        "give_up_at": now + policy.give_up_after_ms,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                lanes.add(Lane(subscription.id, event.ordering_key))
        for start in range(0, len(rows), 200):
            WebhookDelivery.insert_many(rows[start : start + 200]).on_conflict_ignore().execute()
        OutboxEvent.update(dispatched_at=now).where(OutboxEvent.id.in_([event.id for event in events])).execute()
    return sorted(lanes), len(events) == limit
