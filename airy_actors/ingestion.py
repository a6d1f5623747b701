"""How a stored webhook request becomes conversations and messages.

Plain synchronous code over the database; the ingestion actors only call :func:`ingest_webhook_requests` (several
requests in one transaction) and :func:`ingest_webhook_request` (one).
Everything here is safe to run twice on the same request: messages are keyed by Facebook's ``mid``,
reactions and receipts set values, edits are counted by ``num_edit``.

Facebook does not order deliveries across requests, so a reaction, an edit or an echo can arrive before
the message it refers to. Such events are *deferred*: stored again as a new :class:`WebhookRequest` of the
next generation, in the same transaction, and tried again after a backoff.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from airy_actors import outbox
from airy_actors.conversations import (
    ContactMessage,
    ensure_conversation,
    find_message,
    insert_contact_messages,
    insert_message,
    save_metadata,
)
from airy_actors.db import execute, placeholders, supports_returning, write_transaction
from airy_actors.facebook_events import (
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    MessageEdited,
    ReactionChanged,
    ReceiptWatermark,
    parse_webhook_body,
)
from airy_actors.models import Channel, Contact, Conversation, Message, WebhookRequest, stable_id
from airy_actors.sending import claim_echo
from airy_actors.timestamps import iso_ms, now_ms

logger = logging.getLogger(__name__)

DEFERRED_OBJECT = "airy.deferred"
MAX_GENERATIONS = 10  # backoffs of 1 s doubling: about 17 minutes for a late message to arrive
SWEEP_GRACE_MS = 30_000
PROFILE_RETRY_AFTER_MS = 5 * 60_000  # a profile still pending this long lost its actor message
PROFILE_GIVE_UP_MS = 24 * 3_600_000


@dataclass
class IngestionResult:
    """What an ingestion did, for the actor to act on after the commit."""

    messages_created: int = 0
    events_applied: int = 0
    contacts_created: list[str] = field(default_factory=list)
    deferred_event_id: int | None = None
    deferred_delay_ms: int = 0
    already_processed: bool = False


_INSERT_REQUESTS = """
INSERT INTO webhook_event (body, digest, received_at, generation, next_attempt_at) VALUES {rows}
ON CONFLICT (digest) DO NOTHING RETURNING digest, id
"""


def store_webhook_request(body: bytes) -> tuple[int, bool]:
    """Stores a verified webhook request durably.

    Returns:
      The row's id, and whether it is new (a request delivered twice is stored once).
    """
    return store_webhook_requests([body])[0]


def store_webhook_requests(bodies: list[bytes]) -> list[tuple[int, bool]]:
    """Stores verified webhook requests durably, in one statement committed on its own (where RETURNING works).

    Returns:
      For each body, in order, its row's id and whether this call stored it (a request delivered twice,
      even within ``bodies``, is stored once).
    """
    digests = [hashlib.sha256(body).hexdigest() for body in bodies]
    rows = [(body.decode("utf-8", errors="replace"), digest) for body, digest in zip(bodies, digests, strict=True)]
    if supports_returning():
        # The webhook's hot path: one round trip to the database for a whole batch of requests, in plain SQL,
        # the same for both engines: Peewee compiling the multi-row INSERT cost the web about 100 µs of CPU a
        # request, this about 30 (bench/webhook_acceptance.py).
        now = now_ms()
        params = [value for text, digest in rows for value in (text, digest, now, now)]
        cursor = execute(_INSERT_REQUESTS, *params, rows=placeholders(len(bodies), "({p}, {p}, {p}, 0, {p})"))
        inserted = dict(cursor.fetchall())
    else:
        inserted = _insert_one_at_a_time([{"body": text, "digest": digest} for text, digest in rows])
    ids = dict(inserted)
    if len(ids) < len(set(digests)):
        stored_before = WebhookRequest.select(WebhookRequest.digest, WebhookRequest.id).where(
            WebhookRequest.digest.in_(set(digests) - set(ids))
        )
        ids.update(stored_before.tuples())
    # Only the first of two equal bodies is new.
    return [(ids[digest], inserted.pop(digest, None) is not None) for digest in digests]


def _insert_one_at_a_time(rows: list[dict[str, str]]) -> dict[str, int]:
    """The new rows' ids by digest, where RETURNING is missing (SQLite before 3.35): one INSERT a row."""
    inserted = {}
    with write_transaction():
        for row in rows:
            if WebhookRequest.insert(row).on_conflict_ignore().as_rowcount().execute() == 1:
                inserted[row["digest"]] = WebhookRequest.get(WebhookRequest.digest == row["digest"]).id
    return inserted


def ingest_webhook_request(webhook_request_id: int, *, app_id: str | None) -> IngestionResult:
    """Applies every event of one stored webhook request, in one transaction.

    Parameters:
      webhook_request_id: the :class:`WebhookRequest` row.
      app_id: our Facebook app id, to tell our own echoes from other apps'.
    """
    return ingest_webhook_requests([webhook_request_id], app_id=app_id)[0]


def ingest_webhook_requests(webhook_request_ids: list[int], *, app_id: str | None) -> list[IngestionResult]:
    """Applies every event of several stored webhook requests, in order, in one transaction.

    Contact messages, most of the traffic, are stored together: a few statements for a whole run of them (see
    :func:`conversations.insert_contact_messages`). Every other event is applied on its own, once the contact
    messages before it are stored, so that it sees the same state as if all were applied one by one.

    Parameters:
      webhook_request_ids: the :class:`WebhookRequest` rows.
      app_id: our Facebook app id, to tell our own echoes from other apps'.

    Returns:
      What was done for each request, in the order of ``webhook_request_ids``.
    """
    results = {request_id: IngestionResult(already_processed=True) for request_id in webhook_request_ids}
    together = supports_returning()  # else one by one: the new messages can't be told from the old cheaply
    with write_transaction():
        requests = _load(webhook_request_ids)
        channels = _channels(requests)
        contact_messages = _ContactMessages()
        for request in requests:
            result = results[request.id] = IngestionResult()
            deferred: list[InboundEvent] = []
            for event in request.events:
                channel = channels.get(event.page_id)
                if channel is None or isinstance(event, IgnoredEvent):
                    continue
                if together and isinstance(event, InboundMessage) and not event.is_echo:
                    contact_messages.add(event, channel, result)
                    continue
                contact_messages.store()
                if not _apply(event, channel, app_id, result):
                    deferred.append(event)
            if deferred:
                _defer(request, deferred, result)
        contact_messages.store()
        if requests:
            processed = [request.id for request in requests]
            WebhookRequest.update(processed_at=now_ms()).where(WebhookRequest.id.in_(processed)).execute()
    return [results[webhook_request_id] for webhook_request_id in webhook_request_ids]


@dataclass
class _Request:
    """A stored webhook request not processed yet, and its events."""

    id: int
    generation: int
    events: list[InboundEvent]


def _load(webhook_request_ids: list[int]) -> list[_Request]:
    """The requests of ``webhook_request_ids`` that are not processed yet, in that order, each once."""
    query = WebhookRequest.select(WebhookRequest.id, WebhookRequest.body, WebhookRequest.generation).where(
        WebhookRequest.id.in_(webhook_request_ids) & WebhookRequest.processed_at.is_null()
    )
    rows = {webhook_request_id: (body, generation) for webhook_request_id, body, generation in query.tuples()}
    return [
        _Request(webhook_request_id, rows[webhook_request_id][1], _decode(rows[webhook_request_id][0]))
        for webhook_request_id in dict.fromkeys(webhook_request_ids)
        if webhook_request_id in rows
    ]


def _channels(requests: list[_Request]) -> dict[str | None, Channel]:
    """The connected Facebook channels of the requests' pages, by page id, in one query."""
    pages = {event.page_id for request in requests for event in request.events if event.page_id is not None}
    if not pages:
        return {}
    query = Channel.select().where(
        (Channel.source == "facebook") & Channel.source_channel_id.in_(pages) & (Channel.connected == True)  # noqa: E712
    )
    return {channel.source_channel_id: channel for channel in query}


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


def _apply(event: InboundEvent, channel: Channel, app_id: str | None, result: IngestionResult) -> bool:
    """Applies one event. Returns False when its target message is not stored yet."""
    if isinstance(event, InboundMessage):
        return _apply_message(event, channel, app_id, result)
    if isinstance(event, ReceiptWatermark):
        _apply_receipt(event, channel)
        result.events_applied += 1
        return True
    target = find_message(channel, event.source_message_id)
    if target is None:
        return False
    if isinstance(event, ReactionChanged):
        _apply_reaction(event, target)
    elif isinstance(event, MessageEdited):
        _apply_edit(event, target)
    result.events_applied += 1
    return True


def _apply_message(event: InboundMessage, channel: Channel, app_id: str | None, result: IngestionResult) -> bool:
    if event.is_echo and app_id is not None and event.app_id == app_id:
        # Our own send coming back: found by the mid the send actor stored, or by the marker it asked Facebook
        # to echo (sending.claim_echo); else wait for the actor.
        ours = find_message(channel, event.source_message_id) or claim_echo(
            channel, event.source_message_id, event.content
        )
        if ours is None:
            return False
        if ours.delivery_state == "pending":
            save_metadata(ours, ours.metadata, delivery_state="delivered")
        result.events_applied += 1
        return True
    ref = ensure_conversation(channel, event.contact_id)
    if ref.created:
        result.contacts_created.append(ref.contact.id)
    metadata = {"postback": event.postback} if event.postback is not None else {}
    created = insert_message(
        ref.conversation,
        message_id=stable_id("message", channel.id, event.source_message_id),
        source_message_id=event.source_message_id,
        content=event.content,
        from_contact=event.from_contact,
        sender_id=event.sender_id,
        sent_at=event.sent_at_ms,
        delivery_state="delivered",
        metadata=metadata,
    )
    result.messages_created += int(created)
    result.events_applied += 1
    return True


def _apply_reaction(event: ReactionChanged, target: Message) -> None:
    metadata = dict(target.metadata)
    current = metadata.get("reaction")
    sent_at = iso_ms(event.sent_at_ms)
    if isinstance(current, dict) and str(current.get("sent_at", "")) > str(sent_at):
        return  # a newer reaction is already shown; this one arrived late
    if event.action == "react":
        metadata["reaction"] = {"emoji": event.emoji, "sent_at": sent_at}
    else:
        metadata.pop("reaction", None)
    if metadata != target.metadata:
        save_metadata(target, metadata)


def _apply_edit(event: MessageEdited, target: Message) -> None:
    metadata = dict(target.metadata)
    edits = list(metadata.get("edits") or [])
    if event.num_edit <= len(edits):
        return  # this edit, or a later one, is already applied
    content = dict(target.content)
    inner = dict(content.get("message") or {})
    edits.append({"text": inner.get("text"), "edited_at": iso_ms(event.edited_at_ms)})
    inner["text"] = event.text
    content["message"] = inner
    metadata["edits"] = edits
    save_metadata(target, metadata, content=content)


def _apply_receipt(event: ReceiptWatermark, channel: Channel) -> None:
    conversation = Conversation.get_or_none(Conversation.id == stable_id("conversation", channel.id, event.contact_id))
    if conversation is None:
        return
    key = "delivered_at" if event.kind == "delivered" else "read_at"
    stamp = iso_ms(event.watermark_ms)
    outbound = Message.select().where(
        (Message.conversation == conversation.id)
        & (Message.from_contact == False)  # noqa: E712
        & ((Message.sent_at <= event.watermark_ms) | Message.source_message_id.in_(event.source_message_ids or ("",)))
    )
    for message in outbound:
        if key not in message.metadata:
            save_metadata(message, {**message.metadata, key: stamp})


def _defer(request: _Request, events: list[InboundEvent], result: IngestionResult) -> None:
    generation = request.generation + 1
    if generation > MAX_GENERATIONS:
        logger.warning(
            "dropping events whose target never arrived", extra={"webhook_request_id": request.id, "count": len(events)}
        )
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


_DEFERRABLE = {cls.__name__: cls for cls in (InboundMessage, ReactionChanged, MessageEdited)}


def _decode(body: str) -> list[InboundEvent]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    if "\\ud" in body or "\\uD" in body:  # an escaped surrogate: half of a pair, or a text cut inside one
        document = _without_lone_surrogates(document)
    if isinstance(document, dict) and document.get("object") == DEFERRED_OBJECT:
        events: list[InboundEvent] = []
        for item in document.get("events", []):
            cls = _DEFERRABLE[item.pop("type")]
            events.append(cls(**item))
        return events
    return parse_webhook_body(document)


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


def stale_webhook_requests(limit: int = 500) -> list[int]:
    """Rows that no actor finished and whose turn has passed: a crash, or a lost broker message."""
    cutoff = now_ms() - SWEEP_GRACE_MS
    query = (
        WebhookRequest.select(WebhookRequest.id)
        .where(WebhookRequest.processed_at.is_null() & (WebhookRequest.next_attempt_at < cutoff))
        .order_by(WebhookRequest.id)
        .limit(limit)
    )
    ids = [row.id for row in query]
    if ids:
        # Leave them alone for a while: under a backlog their first message may still be queued.
        WebhookRequest.update(next_attempt_at=now_ms() + 2 * SWEEP_GRACE_MS).where(WebhookRequest.id.in_(ids)).execute()
    return ids


def stale_profiles(limit: int = 200) -> list[str]:
    """Contacts whose profile fetch was lost: pending for PROFILE_RETRY_AFTER_MS, created within a day."""
    cutoff = now_ms() - PROFILE_RETRY_AFTER_MS
    stale = (
        Contact.select(Contact.id)
        .where(
            (Contact.profile_state == "pending")
            & (Contact.created_at < cutoff)
            & (Contact.created_at > cutoff - PROFILE_GIVE_UP_MS)
        )
        .limit(limit)
    )
    return [contact.id for contact in stale]


def apply_profile(contact_id: str, profile: dict[str, Any] | None) -> None:
    """Stores a fetched profile, or that fetching it failed for good (``profile`` None).

    A fetched profile changes how the conversation shows: ``conversation.updated`` goes into the outbox in
    the same transaction. A failed fetch changes nothing visible.
    """
    from airy_actors.models import Contact

    if profile is None:
        Contact.update(profile_state="failed").where(Contact.id == contact_id).execute()
        return
    name = " ".join(str(part) for part in (profile.get("first_name"), profile.get("last_name")) if part)
    with write_transaction():
        Contact.update(
            display_name=name or None,
            avatar_url=profile.get("profile_pic"),
            profile_state="fetched",
        ).where(Contact.id == contact_id).execute()
        conversation = Conversation.get_or_none(Conversation.contact == contact_id)
        if conversation is not None:
            outbox.conversation_updated(conversation)
