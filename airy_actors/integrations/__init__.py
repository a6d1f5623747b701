"""Integrator webhooks: subscriptions, the fan-out of outbox events, and ordered, retried delivery.

Modules: ``subscriptions``, ``fanout``, ``lanes`` (ordered delivery and the breaker), ``posting`` (one POST),
``history`` (listing, replay, giving up, pruning) and ``policy`` (timeouts, backoff, the HTTP client).

How an event travels:

1. A write path puts an :class:`OutboxEvent` in its own transaction (``airy_actors.outbox``).
2. :func:`drain_outbox` fans each event out to one :class:`WebhookDelivery` per subscription that wants its
   type and existed before it (``start_after_event_id``), and names the *lanes* it touched.
3. A lane is one subscription's deliveries for one ordering key (a conversation, or a channel).
   :func:`run_lane` sends its oldest pending delivery, and only that one, until it is delivered or given up:
   events of a conversation reach a subscriber in order, while other conversations and other subscribers
   go their own way.

Failures. Timeouts, connection errors, 408, 429 (honouring ``Retry-After``) and 5xx are retried with
exponential backoff and jitter. Any other answer (3xx, 4xx) is final: the delivery is ``failed`` at once.
A delivery still failing after ``give_up_after_ms`` (24 hours) is given up: ``failed``, listed by
``/webhooks.deliveries``, and re-sent on demand by ``/webhooks.replay``; its lane then moves on.

A circuit breaker per subscription keeps a failing receiver from tying up the workers: after a retryable
failure the subscription is *paused*; only one lane at a time (the probe) tries again when the pause ends,
and its success wakes the other lanes. A receiver that stalls therefore costs one worker thread, not all.
"""

from airy_actors.integrations.fanout import drain_outbox
from airy_actors.integrations.history import give_up_overdue, list_deliveries, prune, replay
from airy_actors.integrations.lanes import Lane, LaneRun, run_lane, stale_lanes
from airy_actors.integrations.policy import DeliveryPolicy, delivery_policy, get_delivery_client, use_delivery_policy
from airy_actors.integrations.posting import Attempt, backoff_ms, parse_retry_after, post_event, signature
from airy_actors.integrations.subscriptions import (
    SIGNATURE_HEADER,
    list_subscriptions,
    subscribe,
    subscription_info,
    unsubscribe,
)
from airy_actors.integrations.targets import MAX_URL_LENGTH

__all__ = [
    "MAX_URL_LENGTH",
    "SIGNATURE_HEADER",
    "Attempt",
    "DeliveryPolicy",
    "Lane",
    "LaneRun",
    "backoff_ms",
    "delivery_policy",
    "drain_outbox",
    "get_delivery_client",
    "give_up_overdue",
    "list_deliveries",
    "list_subscriptions",
    "parse_retry_after",
    "post_event",
    "prune",
    "replay",
    "run_lane",
    "signature",
    "stale_lanes",
    "subscribe",
    "subscription_info",
    "unsubscribe",
    "use_delivery_policy",
]
