"""Parsing of Facebook Messenger Platform webhook bodies into domain events.

This module is pure: it performs no I/O and never touches the database.
It takes a webhook body that has already been JSON-decoded and returns a
flat, ordered list of typed events that the ingestion code applies.

Facebook batches many entries per body and many events per entry, and
the raw body is persisted separately, so nothing here ever raises on bad
input: anything that can't be understood becomes an :class:`IgnoredEvent`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeGuard

__all__ = [
    "IgnoredEvent",
    "InboundEvent",
    "InboundMessage",
    "MessageEdited",
    "ReactionChanged",
    "ReceiptWatermark",
    "event_key",
    "parse_webhook_body",
]


@dataclass(frozen=True)
class InboundMessage:
    """A message written by a contact, or an echo of one written by the page.

    Postbacks (button taps) are represented as messages from the contact
    with ``postback`` set.
    """

    page_id: str
    contact_id: str
    source_message_id: str
    content: dict[str, Any]
    from_contact: bool
    sender_id: str
    sent_at_ms: int
    is_echo: bool
    app_id: str | None
    postback: dict[str, Any] | None


@dataclass(frozen=True)
class ReactionChanged:
    """A contact reacted to, or withdrew a reaction from, a message."""

    page_id: str
    contact_id: str
    source_message_id: str
    action: str
    emoji: str | None
    reaction: str | None
    sent_at_ms: int


@dataclass(frozen=True)
class MessageEdited:
    """A contact edited the text of a message they sent earlier."""

    page_id: str
    contact_id: str
    source_message_id: str
    text: str
    num_edit: int
    edited_at_ms: int


@dataclass(frozen=True)
class ReceiptWatermark:
    """Every page message sent before ``watermark_ms`` was delivered to or read by the contact."""

    page_id: str
    contact_id: str
    kind: str
    watermark_ms: int
    source_message_ids: tuple[str, ...]


@dataclass(frozen=True)
class IgnoredEvent:
    """Something in the body that was not turned into a domain event, and why."""

    page_id: str | None
    reason: str
    raw: object


InboundEvent = InboundMessage | ReactionChanged | MessageEdited | ReceiptWatermark | IgnoredEvent

#: Keys that frame every messaging item rather than naming its kind.
_ENVELOPE_KEYS = frozenset({"sender", "recipient", "timestamp"})

#: Supported event kinds, in the order they are looked for in an item.
_SUPPORTED_KINDS = ("message", "postback", "reaction", "message_edit", "delivery", "read")

#: Entry keys holding messaging items. ``standby`` carries the events a
#: secondary receiver sees under the handover protocol; they have the same
#: shape as ``messaging``.
_EVENT_LISTS = ("messaging", "standby")


class _Malformed(Exception):
    """Raised internally to turn a messaging item into an IgnoredEvent."""


def parse_webhook_body(body: object) -> list[InboundEvent]:
    """Turn a decoded webhook body into a flat list of domain events.

    Entries are processed in order, and so are the events within each
    entry; events under ``standby`` follow those under ``messaging``.
    Entry items that aren't even objects are skipped.

    Parameters:
      body(object): The JSON-decoded webhook body, normally
        ``{"object": "page", "entry": [...]}``.  Any value is accepted.

    Returns:
      list[InboundEvent]: The events, in the order Facebook sent them.
    """
    if not isinstance(body, dict):
        return [IgnoredEvent(None, "body is not an object", body)]
    if body.get("object") != "page":
        return [IgnoredEvent(None, "object is not page", body)]
    entries = body.get("entry")
    if not isinstance(entries, list):
        return [IgnoredEvent(None, "missing entry list", body)]

    events: list[InboundEvent] = []
    for entry in entries:
        if isinstance(entry, dict):
            events.extend(_parse_entry(entry))
    return events


def event_key(event: InboundEvent) -> str:
    """Build a stable string identifying an event, for deduplication and logging.

    Facebook retries deliveries, so the same event can arrive in several
    bodies; equal keys mean the same event.

    Parameters:
      event(InboundEvent): An event returned by :func:`parse_webhook_body`.

    Returns:
      str: The key, prefixed with the kind of event.
    """
    if isinstance(event, InboundMessage):
        return f"message:{event.source_message_id}"
    if isinstance(event, ReactionChanged):
        return f"reaction:{event.source_message_id}:{event.contact_id}:{event.action}:{event.sent_at_ms}"
    if isinstance(event, MessageEdited):
        return f"edit:{event.source_message_id}:{event.num_edit}"
    if isinstance(event, ReceiptWatermark):
        return f"receipt:{event.kind}:{event.contact_id}:{event.watermark_ms}"
    return f"ignored:{event.page_id or '-'}:{_digest(_canonical(event.raw))}"


def _parse_entry(entry: dict[str, Any]) -> Iterator[InboundEvent]:
    page_id = _as_id(entry.get("id"))
    if page_id is None:
        # Without the page we can't attribute any of its events to a channel.
        yield IgnoredEvent(None, "entry without page id", entry)
        return

    present = [name for name in _EVENT_LISTS if name in entry]
    if not present:
        # e.g. a `changes` entry from a feed subscription.
        yield IgnoredEvent(page_id, "entry without messaging", entry)
        return

    entry_time = entry.get("time")
    for name in present:
        items = entry[name]
        if not isinstance(items, list):
            yield IgnoredEvent(page_id, f"{name} is not a list", entry)
            continue
        for item in items:
            yield _parse_item(page_id, entry_time, item)


def _parse_item(page_id: str, entry_time: object, item: object) -> InboundEvent:
    if not isinstance(item, dict):
        return IgnoredEvent(page_id, "event is not an object", item)

    kind = next((k for k in _SUPPORTED_KINDS if k in item), None)
    if kind is None:
        return IgnoredEvent(page_id, _unsupported_reason(item), item)

    try:
        if kind == "message":
            return _parse_message(page_id, entry_time, item)
        if kind == "postback":
            return _parse_postback(page_id, entry_time, item)
        if kind == "reaction":
            return _parse_reaction(page_id, entry_time, item)
        if kind == "message_edit":
            return _parse_message_edit(page_id, entry_time, item)
        return _parse_receipt(page_id, kind, item)
    except _Malformed as e:
        return IgnoredEvent(page_id, str(e), item)


def _unsupported_reason(item: dict[str, Any]) -> str:
    # Name the first non-envelope key so logs say *what* was skipped
    # (optin, referral, pass_thread_control, ...).
    kinds = [key for key in item if key not in _ENVELOPE_KEYS]
    if not kinds:
        return "unknown event"
    return f"unsupported event: {kinds[0]}"


def _parse_message(page_id: str, entry_time: object, item: dict[str, Any]) -> InboundMessage:
    message = _object(item, "message")
    mid = _required_str(message, "mid", "message without mid")
    sent_at_ms = _timestamp(item, entry_time)
    sender_id = _party(item, "sender")

    # Facebook sends is_echo only on echoes; anything but a literal true is a contact message.
    if message.get("is_echo") is True:
        return InboundMessage(
            page_id=page_id,
            contact_id=_party(item, "recipient"),
            source_message_id=mid,
            content=item,
            from_contact=False,
            sender_id=sender_id,
            sent_at_ms=sent_at_ms,
            is_echo=True,
            # Absent when the page replied from the Page inbox rather than through an app.
            app_id=_as_id(message.get("app_id")),
            postback=None,
        )

    return InboundMessage(
        page_id=page_id,
        contact_id=sender_id,
        source_message_id=mid,
        content=item,
        from_contact=True,
        sender_id=sender_id,
        sent_at_ms=sent_at_ms,
        is_echo=False,
        app_id=None,
        postback=None,
    )


def _parse_postback(page_id: str, entry_time: object, item: dict[str, Any]) -> InboundMessage:
    postback = _object(item, "postback")
    sent_at_ms = _timestamp(item, entry_time)
    psid = _party(item, "sender")
    payload = postback.get("payload")

    mid = postback.get("mid")
    if not isinstance(mid, str) or not mid:
        # Older postbacks carry no mid; derive one from what identifies the tap
        # so that a retried delivery maps to the same message.
        mid = _synthetic_postback_id(psid, sent_at_ms, payload)

    return InboundMessage(
        page_id=page_id,
        contact_id=psid,
        source_message_id=mid,
        content=item,
        from_contact=True,
        sender_id=psid,
        sent_at_ms=sent_at_ms,
        is_echo=False,
        app_id=None,
        postback={"payload": payload, "title": postback.get("title")},
    )


def _parse_reaction(page_id: str, entry_time: object, item: dict[str, Any]) -> ReactionChanged:
    reaction = _object(item, "reaction")
    action = reaction.get("action")
    if action not in ("react", "unreact"):
        raise _Malformed("unsupported reaction action")
    mid = _required_str(reaction, "mid", "reaction without mid")
    sent_at_ms = _timestamp(item, entry_time)

    return ReactionChanged(
        page_id=page_id,
        contact_id=_party(item, "sender"),
        source_message_id=mid,
        action=action,
        # Both are optional: an unreact usually names neither.
        emoji=_optional_str(reaction.get("emoji")),
        reaction=_optional_str(reaction.get("reaction")),
        sent_at_ms=sent_at_ms,
    )


def _parse_message_edit(page_id: str, entry_time: object, item: dict[str, Any]) -> MessageEdited:
    edit = _object(item, "message_edit")
    mid = _required_str(edit, "mid", "message_edit without mid")
    text = edit.get("text")
    if not isinstance(text, str):
        raise _Malformed("message_edit without text")
    num_edit = _num_edit(edit.get("num_edit"))
    edited_at_ms = _timestamp(item, entry_time)

    return MessageEdited(
        page_id=page_id,
        contact_id=_party(item, "sender"),
        source_message_id=mid,
        text=text,
        num_edit=num_edit,
        edited_at_ms=edited_at_ms,
    )


def _parse_receipt(page_id: str, kind: str, item: dict[str, Any]) -> ReceiptWatermark:
    receipt = _object(item, kind)
    watermark = receipt.get("watermark")
    if not _is_ms(watermark):
        raise _Malformed(f"{kind} without integer watermark")
    # Receipts don't need the event time, but a malformed one still means a malformed event.
    if "timestamp" in item and not _is_ms(item["timestamp"]):
        raise _Malformed("non-integer timestamp")

    mids: tuple[str, ...] = ()
    if "mids" in receipt:
        raw_mids = receipt["mids"]
        if not isinstance(raw_mids, list) or not all(isinstance(m, str) and m for m in raw_mids):
            raise _Malformed(f"{kind} with invalid mids")
        mids = tuple(raw_mids)

    return ReceiptWatermark(
        page_id=page_id,
        contact_id=_party(item, "sender"),
        kind="delivered" if kind == "delivery" else "read",
        watermark_ms=watermark,
        source_message_ids=mids,
    )


def _object(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item[key]
    if not isinstance(value, dict):
        raise _Malformed(f"{key} is not an object")
    return value


def _required_str(obj: dict[str, Any], key: str, reason: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _Malformed(reason)
    return value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _party(item: dict[str, Any], key: str) -> str:
    # Chat Plugin guests come with `user_ref` instead of `id`; they have no
    # PSID yet, so they can't be a contact.
    party = item.get(key)
    party_id = _as_id(party.get("id")) if isinstance(party, dict) else None
    if party_id is None:
        raise _Malformed(f"missing {key}")
    return party_id


def _as_id(value: object) -> str | None:
    # Facebook ids are strings, but app ids arrive as numbers and hand-written
    # test payloads often use numbers too.
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _is_ms(value: object) -> TypeGuard[int]:
    # bool is an int subclass, but `true` is never a timestamp.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _timestamp(item: dict[str, Any], entry_time: object) -> int:
    if "timestamp" in item:
        value = item["timestamp"]
        if not _is_ms(value):
            raise _Malformed("non-integer timestamp")
        return value
    if not _is_ms(entry_time):
        raise _Malformed("missing timestamp")
    return entry_time


def _num_edit(value: object) -> int:
    # Facebook's reference shows num_edit as a quoted "<INT>", so accept
    # decimal strings as well as numbers.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if _is_ms(value):
        return value
    raise _Malformed("message_edit without integer num_edit")


def _synthetic_postback_id(psid: str, sent_at_ms: int, payload: object) -> str:
    if isinstance(payload, str):
        payload_text = payload
    else:
        payload_text = "" if payload is None else _canonical(payload)
    return f"postback:{_digest(f'{psid}|{sent_at_ms}|{payload_text}')[:32]}"


def _canonical(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        pass
    # Not JSON (e.g. mixed-type keys from a caller that didn't decode JSON):
    # repr is still stable enough for a log key.
    try:
        return repr(value)
    except RecursionError:
        return type(value).__name__


def _digest(text: str) -> str:
    # surrogatepass: json.loads happily produces lone surrogates from "\ud800".
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
