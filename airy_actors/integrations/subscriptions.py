"""Integrator subscriptions: subscribe, unsubscribe, list, and the rules a URL and its headers must keep."""

from __future__ import annotations

import logging
from typing import Any

import peewee

from airy_actors import outbox
from airy_actors.config import get_settings
from airy_actors.db import write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.integrations.targets import check_headers, check_url, mask_url
from airy_actors.models.integrations import EVENT_TYPES, OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.timestamps import iso_ms

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Airy-Content-Signature"
DELIVERY_HEADER = "X-Airy-Delivery-Id"
MASK = "********"


def subscribe(
    url: str, *, headers: dict[str, Any] | None, events: list[Any] | None, signature_key: str | None
) -> dict[str, Any]:
    """Creates a subscription. It receives the events written after it exists, never earlier ones.

    Raises:
      BadRequest: naming the field that is wrong.
    """
    url = check_url(url, allow_private=get_settings().webhooks_allow_private)
    headers = check_headers(headers)
    events = _valid_events(events)
    with write_transaction():
        newest = OutboxEvent.select(peewee.fn.MAX(OutboxEvent.id)).scalar() or 0
        subscription = WebhookSubscription.create(
            url=url, headers=headers, events=events, signature_key=signature_key, start_after_event_id=newest
        )
    outbox.forget_subscriptions()
    logger.info("webhook subscribed", extra={"subscription_id": subscription.id, "events": events or "all"})
    return subscription_json(subscription)


def unsubscribe(subscription_id: str) -> dict[str, Any]:
    """Deletes a subscription with its deliveries; nothing more is sent to it. Returns it as it was."""
    with write_transaction():
        subscription = get_subscription(subscription_id)
        WebhookDelivery.delete().where(WebhookDelivery.subscription == subscription_id).execute()
        subscription.delete_instance()
    outbox.forget_subscriptions()
    logger.info("webhook unsubscribed", extra={"subscription_id": subscription_id})
    return subscription_json(subscription)


def get_subscription(subscription_id: str) -> WebhookSubscription:
    subscription = WebhookSubscription.get_or_none(WebhookSubscription.id == subscription_id)
    if subscription is None:
        raise NotFound(f"webhook subscription {subscription_id} does not exist")
    return subscription


def subscription_info(subscription_id: str) -> dict[str, Any]:
    return subscription_json(get_subscription(subscription_id))


def list_subscriptions() -> dict[str, Any]:
    query = WebhookSubscription.select().order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    return {"data": [subscription_json(subscription) for subscription in query]}


def subscription_json(subscription: WebhookSubscription) -> dict[str, Any]:
    """A subscription as the API shows it: header values and the signature key stay hidden."""
    return {
        "id": subscription.id,
        "url": mask_url(subscription.url),
        "headers": {name: MASK for name in subscription.headers},
        "events": list(subscription.events or EVENT_TYPES),
        "signature_key_set": bool(subscription.signature_key),
        "created_at": iso_ms(subscription.created_at),
        "consecutive_failures": subscription.consecutive_failures,
    }


def _valid_events(events: list[Any] | None) -> list[str] | None:
    if events is None:
        return None
    if not events:
        raise BadRequest("events must not be empty; leave it out to receive every event type")
    for event_type in events:
        if not isinstance(event_type, str):
            raise BadRequest("events must be a list of strings")
        if event_type not in EVENT_TYPES:
            raise BadRequest(f"events: {event_type!r} is not a known event type ({', '.join(EVENT_TYPES)})")
    return list(dict.fromkeys(events))
