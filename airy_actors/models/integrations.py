"""Integrator webhook models: subscriptions, the outbox, deliveries.

A change to the data writes an :class:`OutboxEvent` in its own transaction. A drain fans each event out to one
:class:`WebhookDelivery` per interested :class:`WebhookSubscription`. Deliveries of one subscription that share
an ``ordering_key`` (a conversation, or a channel) form a *lane*, sent one at a time in event order.
"""

from __future__ import annotations

import peewee

from airy_actors.models.base import BaseModel, JSONField, new_id
from airy_actors.timestamps import now_ms

EVENT_TYPES = ("message.created", "message.updated", "conversation.updated", "channel.updated")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookSubscription(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    url = peewee.TextField()
    # Header values may be credentials of the receiver: never returned, never logged.
    headers = JSONField(default=dict)
    # None: every event type, including those added later.
    events = JSONField(null=True)
    # A secret: never serialized, never logged.
    signature_key = peewee.TextField(null=True)
    # Outbox events up to this id were written before the subscription existed; it never receives them.
    start_after_event_id = peewee.BigIntegerField(default=0)
    # The circuit breaker: retryable failures in a row, and until when only one probe may be in flight.
    consecutive_failures = peewee.IntegerField(default=0)
    paused_until = peewee.BigIntegerField(default=0)
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)

    def __repr__(self) -> str:  # headers and key stay out of reprs, and so out of tracebacks and logs
        return f"<WebhookSubscription {self.id}>"


class OutboxEvent(BaseModel):
    """A change, written in the transaction that made it, waiting to be fanned out to subscriptions.

    ``tx`` is the id of the writing transaction on PostgreSQL, or the ``tx`` of its ordering key's newest event
    when that is higher (0 on SQLite, whose writes are serialized): the event stream reads events in (tx, id)
    order, only those whose transaction has ended, so that an event whose transaction commits after a later
    id's is never skipped, and a conversation's events come in commit order (``airy_actors.event_stream``).
    """

    id = peewee.BigAutoField()
    type = peewee.CharField(max_length=32)
    ordering_key = peewee.CharField(max_length=64)
    payload = JSONField()
    timestamp = peewee.BigIntegerField(default=now_ms)
    dispatched_at = peewee.BigIntegerField(null=True)
    tx = peewee.BigIntegerField(default=0)

    class Meta:
        indexes = ((("dispatched_at", "id"), False), (("tx", "id"), False), (("ordering_key", "tx"), False))


class EventStreamListener(BaseModel):
    """One row: when a client last connected to (or was still connected to) ``GET /events.stream``.

    While it is within the stream's window, the outbox writes every event type, subscribed to or not.
    """

    id = peewee.IntegerField(primary_key=True)
    last_connected_at = peewee.BigIntegerField()


class WebhookDelivery(BaseModel):
    """One event for one subscription: its state, and the outcome of the last attempt."""

    id = peewee.CharField(primary_key=True, max_length=36, default=new_id)
    subscription = peewee.ForeignKeyField(WebhookSubscription, backref="deliveries", on_delete="CASCADE")
    # Not a foreign key: the order within a lane is this number, read without loading the event.
    event_id = peewee.BigIntegerField()
    type = peewee.CharField(max_length=32)
    ordering_key = peewee.CharField(max_length=64)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    http_status = peewee.IntegerField(null=True)
    error = peewee.TextField(null=True)
    next_attempt_at = peewee.BigIntegerField(default=0)
    # While an actor sends it; a crashed actor's lease runs out and the sweeper hands the lane to another.
    leased_until = peewee.BigIntegerField(default=0)
    # A failing delivery is given up (failed, replayable) at its first failure after this time.
    give_up_at = peewee.BigIntegerField()
    created_at = peewee.BigIntegerField(default=now_ms)
    updated_at = peewee.BigIntegerField(default=now_ms)
    last_attempt_at = peewee.BigIntegerField(null=True)
    delivered_at = peewee.BigIntegerField(null=True)

    class Meta:
        indexes = (
            (("subscription", "event_id"), True),
            (("subscription", "ordering_key", "status", "event_id"), False),
            (("status", "next_attempt_at"), False),
            (("status", "updated_at"), False),
        )


MODELS: list[type[BaseModel]] = [WebhookSubscription, OutboxEvent, WebhookDelivery, EventStreamListener]
