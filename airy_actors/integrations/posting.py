"""One POST to a subscriber: the signed body, the answer read within limits, and when to try again."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

import httpx

from airy_actors.backoff import backoff_ms as exponential_backoff_ms
from airy_actors.integrations.policy import delivery_policy
from airy_actors.integrations.subscriptions import DELIVERY_HEADER, SIGNATURE_HEADER
from airy_actors.integrations.transport import RESPONSE_READ_LIMIT, UnsafeTarget
from airy_actors.models.integrations import OutboxEvent, WebhookSubscription
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)




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
    except UnsafeTarget as exc:  # final: the name resolves where we do not deliver; replay once it is fixed
        return Attempt(None, str(exc))
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
    floor = None if retry_after_ms is None else min(retry_after_ms, policy.max_retry_after_ms)
    return exponential_backoff_ms(
        failures, min_ms=policy.min_backoff_ms, max_ms=policy.max_backoff_ms, at_least_ms=floor, jitter="equal"
    )
