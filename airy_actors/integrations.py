"""Integrator webhooks: subscriptions, the fan-out of outbox events, and ordered, retried delivery.

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

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import peewee

from airy_actors import db, outbox
from airy_actors.db import database, write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.models import new_id
from airy_actors.models.integrations import EVENT_TYPES, OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.pagination import paginate
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Airy-Content-Signature"
DELIVERY_HEADER = "X-Airy-Delivery-Id"
MASK = "********"
MAX_URL_LENGTH = 2048
MAX_HEADERS = 32
RESPONSE_READ_LIMIT = 64 * 1024
STALE_GRACE_MS = 30_000
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RESERVED_HEADERS = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower(), DELIVERY_HEADER.lower()}


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


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST to a subscriber."""

    http_status: int | None
    error: str | None = None
    retryable: bool = False
    retry_after_ms: int | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


# --- subscriptions ---------------------------------------------------------------------------------------


def subscribe(
    url: str, *, headers: dict[str, Any] | None, events: list[Any] | None, signature_key: str | None
) -> dict[str, Any]:
    """Creates a subscription. It receives the events written after it exists, never earlier ones.

    Raises:
      BadRequest: naming the field that is wrong.
    """
    url = _valid_url(url)
    headers = _valid_headers(headers)
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
        "url": subscription.url,
        "headers": {name: MASK for name in subscription.headers},
        "events": list(subscription.events or EVENT_TYPES),
        "signature_key_set": bool(subscription.signature_key),
        "created_at": iso_ms(subscription.created_at),
        "consecutive_failures": subscription.consecutive_failures,
    }


def _valid_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"url must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a malformed port)
    except ValueError:
        raise BadRequest("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadRequest("url must be an http:// or https:// URL with a host")
    if any(ord(char) < 33 for char in url.strip()):
        raise BadRequest("url must not contain spaces or control characters")
    return url.strip()


def _valid_headers(headers: dict[str, Any] | None) -> dict[str, str]:
    if headers is None:
        return {}
    if len(headers) > MAX_HEADERS:
        raise BadRequest(f"headers must have at most {MAX_HEADERS} entries")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise BadRequest(f"headers: {name!r} is not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise BadRequest(f"headers.{name} is set by airy-actors and cannot be overridden")
        if not isinstance(value, str):
            raise BadRequest(f"headers.{name} must be a string")
        if not value.isascii() or any((ord(char) < 32 and char != "\t") or ord(char) == 127 for char in value):
            raise BadRequest(f"headers.{name} must be printable ASCII, without control characters")
        if len(value) > 8192:
            raise BadRequest(f"headers.{name} must be at most 8192 characters")
    return dict(headers)


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


# --- fan-out -------------------------------------------------------------------------------------------


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
        if isinstance(database.obj, peewee.PostgresqlDatabase):
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


# --- delivery ------------------------------------------------------------------------------------------


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


def event_body(event: OutboxEvent) -> bytes:
    """The bytes POSTed for ``event`` (and signed)."""
    document = {"type": event.type, "payload": event.payload, "timestamp": event.timestamp}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature(key: str, body: bytes) -> str:
    """``X-Airy-Content-Signature``: the hex HMAC-SHA256 of the body under the subscription's key."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def post_event(
    client: httpx.Client, subscription: WebhookSubscription, event: OutboxEvent, *, delivery_id: str
) -> Attempt:
    """POSTs one event to a subscriber and classifies the answer. Never raises for the receiver's faults."""
    body = event_body(event)
    try:
        headers = httpx.Headers(subscription.headers)
    except (UnicodeError, ValueError):
        return Attempt(None, "the subscription's headers cannot be sent")
    headers["Content-Type"] = "application/json"
    headers[DELIVERY_HEADER] = delivery_id
    if subscription.signature_key:
        headers[SIGNATURE_HEADER] = signature(subscription.signature_key, body)
    try:
        with client.stream("POST", subscription.url, content=body, headers=headers) as response:
            # A little of the body lets the connection be reused; a huge one must not be read.
            read = 0
            chunks = () if response.is_stream_consumed else response.iter_raw()  # a transport may have read it
            for chunk in chunks:
                read += len(chunk)
                if read >= RESPONSE_READ_LIMIT:
                    break
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TimeoutException:
        return Attempt(None, "the receiver did not answer in time", retryable=True)
    except httpx.LocalProtocolError as exc:
        return Attempt(None, f"the request cannot be sent ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return Attempt(None, f"the receiver cannot be reached ({type(exc).__name__})", retryable=True)
    if 200 <= status < 300:
        return Attempt(status)
    retryable = status in (408, 429) or status >= 500
    return Attempt(status, f"the receiver answered HTTP {status}", retryable, retry_after if retryable else None)


def parse_retry_after(value: str | None) -> int | None:
    """``Retry-After`` in milliseconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1000
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int(moment.timestamp() * 1000) - now_ms())


def backoff_ms(failures: int, retry_after_ms: int | None = None) -> int:
    """Exponential backoff with equal jitter after ``failures`` failures, at least ``Retry-After`` (capped)."""
    policy = delivery_policy()
    ceiling = min(policy.max_backoff_ms, policy.min_backoff_ms * 2 ** min(max(failures - 1, 0), 30))
    delay = ceiling // 2 + random.randint(0, ceiling - ceiling // 2)
    if retry_after_ms is not None:
        delay = max(delay, min(retry_after_ms, policy.max_retry_after_ms))
    return delay


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


# --- deliveries: history and replay -----------------------------------------------------------------------


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


# --- upkeep --------------------------------------------------------------------------------------------


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

    The newest event is always kept: SQLite reuses the highest id once it is deleted, and subscriptions
    compare ids (``start_after_event_id``).

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
            & (OutboxEvent.id < newest)
        )
        .limit(limit)
    )
    ids = [row.id for row in unused]
    if ids:
        deleted += OutboxEvent.delete().where(OutboxEvent.id.in_(ids)).execute()
    return deleted


# --- the HTTP client and the policy ---------------------------------------------------------------------

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
