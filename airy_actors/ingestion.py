"""How a stored webhook request becomes conversations and messages.

Plain synchronous code over the database; the ingestion actors only call :func:`ingest_webhook_requests` (several
requests in one transaction) and :func:`ingest_webhook_request` (one).
Everything here is safe to run twice on the same request: messages are keyed by Meta's ``mid``,
reactions, receipts and unsends set values, edits are counted by ``num_edit``. Messenger and Instagram bodies go
the same way; each event reaches the connected channel of its own platform (:func:`_channels`).

Meta does not order deliveries across requests, so a reaction, an edit, an unsend, a read or an echo can arrive before
the message it refers to. Such events are *deferred*: stored again as a new :class:`WebhookRequest` of the
next generation, in the same transaction, and tried again after a backoff.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from airy_actors import conversation_effects, event_failures, metrics
from airy_actors.conversations import (
    ContactMessage,
    insert_contact_messages,
)
from airy_actors.db import database, supports_returning, write_transaction
from airy_actors.event_effects import IngestionResult, apply_event, event_kind
from airy_actors.events import (
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    MessageRead,
    OptinReceived,
    ReactionChanged,
    ReferralReceived,
    ThreadControlChanged,
    UnusableEvent,
    parse_webhook_body,
)
from airy_actors.media.attachments import has_media
from airy_actors.media.attachments import mark_pending as mark_media_pending
from airy_actors.models import Channel, WebhookRequest
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

DEFERRED_OBJECT = "airy.deferred"
MAX_GENERATIONS = 10  # backoffs of 1 s doubling: about 17 minutes for a late message to arrive


def ingest_webhook_request(
    webhook_request_id: int, *, app_id: str | None, together: bool = True
) -> IngestionResult:
    """Applies every event of one stored webhook request, in one transaction.

    Parameters:
      webhook_request_id: the :class:`WebhookRequest` row.
      app_id: our Facebook app id, to tell our own echoes from other apps'.
      together: store contact messages in one statement; False applies every event in a savepoint of its own.
    """
    return ingest_webhook_requests([webhook_request_id], app_id=app_id, together=together)[0]


def ingest_webhook_requests(
    webhook_request_ids: list[int], *, app_id: str | None, together: bool = True
) -> list[IngestionResult]:
    """Applies every event of several stored webhook requests, in order, in one transaction.

    Contact messages, most of the traffic, are stored together: a few statements for a whole run of them (see
    :func:`conversations.insert_contact_messages`). Every other event is applied on its own, in a savepoint, once
    the contact messages before it are stored, so that it sees the same state as if all were applied one by
    one. An event that raises is rolled back alone and recorded (:mod:`airy_actors.event_failures`); the others
    go on. When the statement of the contact messages fails, the whole transaction does: the caller then applies
    each request again with ``together=False``, where every event has a savepoint of its own.

    Parameters:
      webhook_request_ids: the :class:`WebhookRequest` rows.
      app_id: our Facebook app id, to tell our own echoes from other apps'.
      together: see above.

    Returns:
      What was done for each request, in the order of ``webhook_request_ids``.

    Raises:
      peewee.OperationalError: the database is unreachable; nothing was applied.
    """
    results = {request_id: IngestionResult(already_processed=True) for request_id in webhook_request_ids}
    together = together and supports_returning()  # else the new messages can't be told from the old cheaply
    with write_transaction():
        requests = _load(webhook_request_ids)
        channels = _channels(requests)
        contact_messages = _ContactMessages()
        for request in requests:
            result = results[request.id] = IngestionResult()
            if request.unreadable is not None:
                result.failed_event_ids.append(_record_unreadable(request))
                continue
            deferred: list[InboundEvent] = []
            for index, event in enumerate(request.events):
                if isinstance(event, IgnoredEvent):
                    _log_ignored(request, event)
                    continue
                if isinstance(event, UnusableEvent):
                    result.failed_event_ids.append(_record_unusable(request, index, event))
                    continue
                channel = channels.get((event.platform, event.page_id))
                if channel is None:
                    continue  # kept, and produces nothing: the page (or account) is not connected
                if together and isinstance(event, InboundMessage) and not event.is_echo:
                    contact_messages.add(event, channel, result)
                    continue
                contact_messages.store()
                outcome = _apply_alone(request, index, event, channel, app_id, result)
                if outcome is False:
                    deferred.append(event)
            if deferred:
                _defer(request, deferred, result)
        contact_messages.store()
        mark_media_pending([id_ for result in results.values() for id_ in result.media_message_ids])
        if requests:
            processed = [request.id for request in requests]
            WebhookRequest.update(processed_at=now_ms()).where(WebhookRequest.id.in_(processed)).execute()
    metrics.observe_ingestion_lag(now_ms(), ((r.received_at, results[r.id].messages_created) for r in requests))
    return [results[webhook_request_id] for webhook_request_id in webhook_request_ids]


def _apply_alone(
    request: _Request, index: int, event: InboundEvent, channel: Channel, app_id: str | None, result: IngestionResult
) -> bool | None:
    """Applies one event in a savepoint of its own. Returns its outcome, or None when it failed (and was recorded)."""
    try:
        with database.atomic():
            return _apply(event, channel, app_id, result)
    except event_failures.OUTAGE_ERRORS:
        raise
    except Exception as error:
        failure_id = event_failures.record(
            request.id,
            index,
            page_id=event.page_id,
            kind=event_kind(event),
            error=event_failures.describe(error),
            received_at=request.received_at,
        )
        result.failed_event_ids.append(failure_id)
        return None


def retry_failed_event(failed_event_id: str, *, app_id: str | None) -> IngestionResult | None:
    """Applies a recorded failed event again, in one transaction.

    Returns:
      What it did once applied; None when it is not due (gone, being retried, failed for good) or failed again.
    """
    with write_transaction():
        failure = event_failures.claim(failed_event_id)
        if failure is None:
            return None
        row = WebhookRequest.get_or_none(WebhookRequest.id == failure.webhook_request_id)
        events = _decode(row.body, row.received_at)[0] if row is not None else []
        if not 0 <= failure.event_index < len(events):
            event_failures.attempt_failed(failure, "the event can no longer be found in its stored request")
            return None
        event = events[failure.event_index]
        channel = _channels([_Request(row.id, 0, row.received_at, [event])]).get((event.platform, event.page_id))
        if channel is None:
            event_failures.attempt_failed(failure, "the page is not connected")
            return None
        result = IngestionResult()
        try:
            with database.atomic():
                done = _apply(event, channel, app_id, result)
        except event_failures.OUTAGE_ERRORS:
            raise
        except Exception as error:
            event_failures.attempt_failed(failure, event_failures.describe(error))
            return None
        if not done:
            event_failures.attempt_failed(failure, "the message it refers to is not stored yet")
            return None
        event_failures.applied(failure)
        return result


def _apply(event: InboundEvent, channel: Channel, app_id: str | None, result: IngestionResult) -> bool:
    """Applies one event. Returns False when the message it refers to is not stored yet."""
    if isinstance(event, ReferralReceived):
        conversation_effects.apply_referral(event, channel, result)
    elif isinstance(event, OptinReceived):
        conversation_effects.apply_optin(event, channel, result)
    elif isinstance(event, ThreadControlChanged):
        conversation_effects.apply_thread_control(event, channel, app_id, result)
    else:
        return apply_event(event, channel, app_id, result)
    result.events_applied += 1
    return True


def _record_unusable(request: _Request, index: int, event: UnusableEvent) -> str:
    return event_failures.record(
        request.id,
        index,
        page_id=event.page_id,
        kind=event.kind,
        error=f"a value cannot be stored: {event.reason}",
        received_at=request.received_at,
        final=True,
    )


def _record_unreadable(request: _Request) -> str:
    return event_failures.record(
        request.id,
        event_failures.WHOLE_REQUEST,
        page_id=None,
        kind="request",
        error=f"the request could not be read: {request.unreadable}",
        received_at=request.received_at,
        final=True,
    )


def _log_ignored(request: _Request, event: IgnoredEvent) -> None:
    logger.info("event ignored", extra={"webhook_request_id": request.id, **event.log_fields()})


@dataclass
class _Request:
    """A stored webhook request not processed yet, and its events."""

    id: int
    generation: int
    received_at: int
    events: list[InboundEvent]
    unreadable: str | None = None  # why the body could not be read at all


def _load(webhook_request_ids: list[int]) -> list[_Request]:
    """The requests of ``webhook_request_ids`` that are not processed yet, in that order, each once."""
    query = WebhookRequest.select(
        WebhookRequest.id, WebhookRequest.body, WebhookRequest.generation, WebhookRequest.received_at
    ).where(WebhookRequest.id.in_(webhook_request_ids) & WebhookRequest.processed_at.is_null())
    rows = {row_id: (body, generation, received_at) for row_id, body, generation, received_at in query.tuples()}
    requests = []
    for row_id in dict.fromkeys(webhook_request_ids):
        if row_id in rows:
            body, generation, received_at = rows[row_id]
            events, unreadable = _decode(body, received_at)
            requests.append(_Request(row_id, generation, received_at, events, unreadable))
    return requests


def _channels(requests: list[_Request]) -> dict[tuple[str, str], Channel]:
    """The connected channels of the requests' entries, by (platform, entry id), in one query.

    An entry id is a page id for Messenger and an Instagram account id for Instagram: one page may have a channel
    of each, and an event reaches only the channel of its own platform.
    """
    wanted = {
        (event.platform, event.page_id)
        for request in requests
        for event in request.events
        if event.page_id is not None
    }
    if not wanted:
        return {}
    query = Channel.select().where(
        Channel.source.in_({platform for platform, _ in wanted})
        & Channel.source_channel_id.in_({page_id for _, page_id in wanted})
        & (Channel.connected == True)  # noqa: E712
    )
    return {
        (channel.source, channel.source_channel_id): channel
        for channel in query
        if (channel.source, channel.source_channel_id) in wanted
    }


class _ContactMessages:
    """Contact messages waiting to be stored together, each with the result of the request it came from."""

    def __init__(self) -> None:
        self._messages: list[ContactMessage] = []
        self._results: list[IngestionResult] = []

    def add(self, event: InboundMessage, channel: Channel, result: IngestionResult) -> None:
        metadata = {"postback": event.postback} if event.postback is not None else {}
        message = ContactMessage(
            channel.id, event.contact_id, event.source_message_id, event.content, event.sent_at_ms, metadata
        )
        self._messages.append(message)
        self._results.append(result)
        result.events_applied += 1
        if has_media(event.content):
            result.media_message_ids.append(message.message_id)

    def store(self) -> None:
        """Stores the waiting messages, and counts what they did in their requests' results."""
        if not self._messages:
            return
        stored = insert_contact_messages(self._messages)
        announced: set[str] = set()
        for message, result, new in zip(self._messages, self._results, stored.new, strict=True):
            result.messages_created += int(new)
            if message.contact_id in stored.contacts_created and message.contact_id not in announced:
                announced.add(message.contact_id)
                result.contacts_created.append(message.contact_id)
        self._messages, self._results = [], []


def _defer(request: _Request, events: list[InboundEvent], result: IngestionResult) -> None:
    generation = request.generation + 1
    if generation > MAX_GENERATIONS:
        for event in events:
            failure_id = event_failures.record(
                request.id,
                request.events.index(event),
                page_id=event.page_id,
                kind=event_kind(event),
                error="the message it refers to never arrived",
                received_at=request.received_at,
                final=True,
            )
            result.failed_event_ids.append(failure_id)
        return
    body = json.dumps(
        {"object": DEFERRED_OBJECT, "events": [{"type": type(e).__name__, **dataclasses.asdict(e)} for e in events]},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    delay_ms = 1000 * 2 ** (generation - 1)
    digest = hashlib.sha256(f"{generation}:{body}".encode()).hexdigest()
    WebhookRequest.insert(
        body=body, digest=digest, generation=generation, next_attempt_at=now_ms() + delay_ms
    ).on_conflict_ignore().execute()
    result.deferred_event_id = WebhookRequest.get(WebhookRequest.digest == digest).id
    result.deferred_delay_ms = delay_ms


_DEFERRABLE = {
    cls.__name__: cls for cls in (InboundMessage, ReactionChanged, MessageEdited, MessageDeleted, MessageRead)
}


def _decode(body: str, received_at_ms: int) -> tuple[list[InboundEvent], str | None]:
    """The events of a stored body, or why it cannot be read (nesting too deep, not JSON)."""
    try:
        document = json.loads(body)
    except RecursionError:
        return [], "its JSON is nested too deeply"
    except ValueError as error:
        return [], f"it is not JSON ({error})"
    if "\\ud" in body or "\\uD" in body:  # an escaped surrogate: half of a pair, or a text cut inside one
        document = _without_lone_surrogates(document)
    if isinstance(document, dict) and document.get("object") == DEFERRED_OBJECT:
        events: list[InboundEvent] = []
        try:
            for item in document.get("events", []):
                cls = _DEFERRABLE[item.pop("type")]
                events.append(cls(**item))
        except (KeyError, TypeError, AttributeError) as error:  # written by another version of this code
            return [], f"a deferred event this version cannot read ({type(error).__name__}: {error})"
        return events, None
    return parse_webhook_body(document, received_at_ms=received_at_ms), None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads has joined every valid pair into one character


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with each lone surrogate replaced by U+FFFD.

    JSON may carry half of a surrogate pair (``"\\ud83d"``, a text cut in the middle of an emoji), which
    json.loads keeps as it is, and which no database can store: the whole request would fail for ever.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value
