"""Parsing of Facebook Messenger Platform webhook bodies into domain events.

This module is pure: it performs no I/O and never touches the database.
It takes a webhook body that has already been JSON-decoded and returns a
flat, ordered list of typed events that the ingestion code applies.

Facebook batches many entries per body and many events per entry, and
the raw body is persisted separately, so nothing here ever raises on bad
input, and nothing is dropped silently. Every messaging item becomes at
least one event:

- a domain event (:class:`InboundMessage`, :class:`ReactionChanged`,
  :class:`MessageEdited`, :class:`ReceiptWatermark`,
  :class:`ReferralReceived`, :class:`OptinReceived`,
  :class:`ThreadControlChanged`);
- an :class:`UnusableEvent` when the item is an event this module
  handles but one of its values cannot be stored (a timestamp past year
  9999, an id longer than its column, a watermark of ``1e30``): the
  caller records it as failed, with the reason, rather than retrying it;
- an :class:`IgnoredEvent` for anything else (an event kind this module
  does not handle, or an item missing what makes it that kind of event):
  the caller writes one log line for it (see :meth:`IgnoredEvent.log_fields`).

One item may give several events: a postback or a message that carries a
``referral`` gives the :class:`InboundMessage` and then a
:class:`ReferralReceived`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airy_actors.models import Channel, Contact, Message

__all__ = [
    "IgnoredEvent",
    "InboundEvent",
    "InboundMessage",
    "MessageEdited",
    "OptinReceived",
    "ReactionChanged",
    "ReceiptWatermark",
    "ReferralReceived",
    "ThreadControlChanged",
    "UnusableEvent",
    "decode_emoji",
    "event_key",
    "parse_webhook_body",
]


@dataclass(frozen=True)
class InboundMessage:
    """A message written by a contact, or an echo of one written by the page.

    Postbacks (button taps) are represented as messages from the contact
    with ``postback`` set. The sender of an echo is the page itself:
    ``sender_id`` is then ``page_id``, and ``contact_id`` the recipient.
    ``standby`` is true when the event came under ``standby`` (another app
    owned the thread, handover protocol); it is otherwise the same event.
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
    standby: bool = False


@dataclass(frozen=True)
class ReactionChanged:
    """A contact reacted to, or withdrew a reaction from, a message.

    ``emoji`` is decoded (``"❤️"``) even when Facebook sent it as the
    escaped text ``\\u{2764}\\u{FE0F}``; see :func:`decode_emoji`.
    """

    page_id: str
    contact_id: str
    source_message_id: str
    action: str
    emoji: str | None
    reaction: str | None
    sent_at_ms: int
    standby: bool = False


@dataclass(frozen=True)
class MessageEdited:
    """A contact edited the text of a message they sent earlier."""

    page_id: str
    contact_id: str
    source_message_id: str
    text: str
    num_edit: int
    edited_at_ms: int
    standby: bool = False


@dataclass(frozen=True)
class ReceiptWatermark:
    """Every page message sent before ``watermark_ms`` was delivered to or read by the contact."""

    page_id: str
    contact_id: str
    kind: str
    watermark_ms: int
    source_message_ids: tuple[str, ...]
    standby: bool = False


@dataclass(frozen=True)
class ReferralReceived:
    """A contact came to the page's thread through a referral: an m.me link, an ad, the Chat Plugin.

    Facebook sends the ``referral`` object alone (``messaging_referrals``: the contact already had a thread),
    inside a ``postback`` (the Get Started tap that opens a new thread) or inside a ``message`` (a message
    sent from an ad). In the last two cases the postback or message is an :class:`InboundMessage` of its own,
    listed just before this event, and ``source_message_id`` is its id.

    Attributes:
      page_id: the page (channel) the referral is for.
      contact_id: the contact's PSID; None when Facebook names the person only by ``user_ref`` (a Chat Plugin
        guest since Graph API v7.0), who has no conversation on the page.
      user_ref: the ``sender.user_ref`` of a Chat Plugin guest, else None.
      source: as sent: ``"SHORTLINK"`` (m.me link), ``"ADS"``, ``"CUSTOMER_CHAT_PLUGIN"``, ...
      type: as sent, ``"OPEN_THREAD"`` in every documented case; None when absent.
      ref: the ``ref`` parameter of the link, ad or plugin; None when absent (optional for ads).
      ad_id: the ad's id, for ``source == "ADS"``; None otherwise.
      referer_uri: the web page the Chat Plugin was on; None otherwise.
      ads_context_data: the ad's ``ads_context_data`` object as sent (``ad_title``, ``photo_url``,
        ``video_url``, ``post_id``, ``product_id``, ``flow_id``); None when absent.
      timestamp_ms: when the contact followed the referral (epoch ms).
      origin: where the ``referral`` object was: ``"referral"`` (alone), ``"postback"`` or ``"message"``.
      source_message_id: the id of the postback or message that carried it; None when it came alone.
      standby: the event came under ``standby`` (another app owned the thread).
    """

    page_id: str
    contact_id: str | None
    user_ref: str | None
    source: str
    type: str | None
    ref: str | None
    ad_id: str | None
    referer_uri: str | None
    ads_context_data: dict[str, Any] | None
    timestamp_ms: int
    origin: str
    source_message_id: str | None
    standby: bool = False


#: ``OptinReceived.status`` for each ``notification_messages_status`` Facebook documents. Facebook's reference
#: writes the values with a space; other connectors record them with an underscore; both are accepted.
_NOTIFICATION_STATUSES = {"STOP NOTIFICATIONS": "stopped", "RESUME NOTIFICATIONS": "resumed"}


@dataclass(frozen=True)
class OptinReceived:
    """A contact opted in: to recurring Marketing Messages, or through a plugin.

    Two shapes share this type, told apart by ``type``:

    - ``type == "notification_messages"``: the contact accepted (or re-accepted), stopped or resumed
      Marketing Messages (recurring notifications). ``token`` is what the Send API takes instead of a PSID;
      ``status`` is ``"active"`` for an opt-in or a re-opt-in, ``"stopped"`` or ``"resumed"`` when the contact
      changed their mind (``notification_messages_status``). ``contact_id`` is always set.
    - ``type is None``: a plain opt-in from the Send to Messenger plugin (``ref``), the checkbox plugin
      (``user_ref``; Facebook then sends no sender, so ``contact_id`` is None), or a message request accepted
      through customer matching (``message_request == "accept"``). The notification fields are None.

    The token is a credential: it is left out of ``repr`` and of :func:`event_key`, and must stay out of logs.

    Attributes:
      page_id: the page (channel).
      contact_id: the contact's PSID, or None (checkbox plugin).
      timestamp_ms: when the contact opted in (epoch ms).
      type: ``"notification_messages"`` or None.
      status: ``"active"``, ``"stopped"`` or ``"resumed"`` for notification messages, else None.
      token: ``notification_messages_token``.
      title: the title of the opt-in request the contact accepted.
      frequency: ``notification_messages_frequency`` (``DAILY``, ``WEEKLY``, ``MONTHLY``; gone since v16).
      timezone: ``notification_messages_timezone``, a timezone name.
      expires_at_ms: ``token_expiry_timestamp`` in epoch ms, or None when absent.
      token_status: ``user_token_status`` (``REFRESHED``, ``NOT_REFRESHED``), or None.
      payload: the ``payload`` the page set on its opt-in request, as sent (normally a string).
      ref: a plugin's ``data-ref``, or None.
      user_ref: the checkbox plugin's ``user_ref``, or None.
      message_request: ``"accept"`` when a customer-matching message request was accepted, else None.
      standby: the event came under ``standby``.
    """

    page_id: str
    contact_id: str | None
    timestamp_ms: int
    type: str | None
    status: str | None
    token: str | None = field(repr=False)
    title: str | None
    frequency: str | None
    timezone: str | None
    expires_at_ms: int | None
    token_status: str | None
    payload: Any
    ref: str | None
    user_ref: str | None
    message_request: str | None
    standby: bool = False


#: ``ThreadControlChanged.kind`` for each handover event.
_HANDOVERS = {"pass_thread_control": "pass", "take_thread_control": "take", "request_thread_control": "request"}


@dataclass(frozen=True)
class ThreadControlChanged:
    """Control of a contact's thread moved between apps, or an app asked for it (handover protocol).

    Attributes:
      page_id: the page (channel).
      contact_id: the contact's PSID.
      kind: ``"pass"`` (the thread was passed to ``new_owner_app_id``), ``"take"`` (the thread was taken from
        ``previous_owner_app_id``, by ``new_owner_app_id`` when Facebook says) or ``"request"``
        (``requested_owner_app_id`` asks the current owner for the thread; nothing moved yet).
      new_owner_app_id: the app that holds the thread now; always set for a pass, None when not sent.
      previous_owner_app_id: the app that held it; None when not sent or when the thread was idle.
      requested_owner_app_id: the app asking for the thread; set for a request only.
      metadata: the ``metadata`` string the calling app passed, or None.
      timestamp_ms: when control changed (epoch ms).
      standby: the event came under ``standby``.
    """

    page_id: str
    contact_id: str
    kind: str
    new_owner_app_id: str | None
    previous_owner_app_id: str | None
    requested_owner_app_id: str | None
    metadata: str | None
    timestamp_ms: int
    standby: bool = False


@dataclass(frozen=True)
class IgnoredEvent:
    """Something in the body that this module does not turn into a domain event, and why.

    The caller writes one log line for it, from :meth:`log_fields`. ``raw`` (the item, entry or body) is kept
    for debugging but out of ``repr`` and of logs: it may hold a notification token.

    Attributes:
      page_id: the entry's page, or None for something above or without one.
      reason: why it was ignored, e.g. ``"unsupported event: account_linking"``, ``"message without mid"``.
      raw: what was ignored.
      kind: what it was: the messaging event's kind (``"optin"``, ``"app_roles"``, ``"message.referral"``, ...),
        or ``"body"``, ``"entry"``, ``"event"`` (an item that is not an object), ``"unknown"``.
      standby: it came under ``standby``.
    """

    page_id: str | None
    reason: str
    raw: object = field(repr=False)
    kind: str = "unknown"
    standby: bool = False

    def log_fields(self) -> dict[str, object]:
        """The fields of the one log line for this event; never ``raw``."""
        return {"page_id": self.page_id, "kind": self.kind, "reason": self.reason, "standby": self.standby}


@dataclass(frozen=True)
class UnusableEvent:
    """An event of a kind this module handles whose values cannot be stored: to record as failed, not retry.

    For example a timestamp past year 9999, a watermark of ``1e30`` or ``NaN``, a mid longer than the
    255 characters of its column. Only this event is affected; the other events of the body parse as usual.

    Attributes:
      page_id: the entry's page, or None when the page id itself cannot be stored.
      kind: the messaging event's kind (``"message"``, ``"read"``, ``"postback.referral"``, ...) or ``"entry"``.
      reason: what cannot be stored, e.g. ``"timestamp is past year 9999"``.
      raw: the item (or entry), out of ``repr`` and of logs like :attr:`IgnoredEvent.raw`.
      standby: it came under ``standby``.
    """

    page_id: str | None
    kind: str
    reason: str
    raw: object = field(repr=False)
    standby: bool = False

    def log_fields(self) -> dict[str, object]:
        """The fields of the one log line for this event; never ``raw``."""
        return {"page_id": self.page_id, "kind": self.kind, "reason": self.reason, "standby": self.standby}


InboundEvent = (
    InboundMessage
    | ReactionChanged
    | MessageEdited
    | ReceiptWatermark
    | ReferralReceived
    | OptinReceived
    | ThreadControlChanged
    | UnusableEvent
    | IgnoredEvent
)

#: Keys that frame every messaging item rather than naming its kind.
_ENVELOPE_KEYS = frozenset({"sender", "recipient", "timestamp"})

#: Supported event kinds, in the order they are looked for in an item.
_SUPPORTED_KINDS = (
    "message",
    "postback",
    "reaction",
    "message_edit",
    "delivery",
    "read",
    "referral",
    "optin",
    *_HANDOVERS,
)

#: Entry keys holding messaging items. ``standby`` carries the events a
#: secondary receiver sees under the handover protocol; they have the same
#: shape as ``messaging``.
_EVENT_LISTS = ("messaging", "standby")

#: The longest values the columns behind them hold.
_PAGE_ID_MAX = Channel.source_channel_id.max_length
_CONTACT_ID_MAX = Contact.source_contact_id.max_length
_MESSAGE_ID_MAX = Message.source_message_id.max_length
#: App ids, ad ids and user_refs have no column of their own (they go into JSON metadata); 255 keeps them
#: within any column someone may give them, and a longer one is not an id Facebook sends.
_OTHER_ID_MAX = 255

#: 9999-12-31T23:59:59.999Z, the last instant an ISO-8601 timestamp (and Python's datetime) can show.
_MAX_MS = 253_402_300_799_999


def parse_webhook_body(body: object, *, received_at_ms: int | None = None) -> list[InboundEvent]:
    """Turn a decoded webhook body into a flat list of domain events.

    Entries are processed in order, and so are the events within each
    entry; events under ``standby`` follow those under ``messaging``.
    An entry that isn't even an object gives one :class:`IgnoredEvent`.

    Parameters:
      body(object): The JSON-decoded webhook body, normally
        ``{"object": "page", "entry": [...]}``.  Any value is accepted.
      received_at_ms(int | None): When the request was received (epoch ms):
        the time of an event that has no ``timestamp`` and whose entry has
        no usable ``time``. Without it such an event is unusable.

    Returns:
      list[InboundEvent]: The events, in the order Facebook sent them.
    """
    if not isinstance(body, dict):
        return [IgnoredEvent(None, "body is not an object", body, kind="body")]
    if body.get("object") != "page":
        return [IgnoredEvent(None, "object is not page", body, kind="body")]
    entries = body.get("entry")
    if not isinstance(entries, list):
        return [IgnoredEvent(None, "missing entry list", body, kind="body")]

    events: list[InboundEvent] = []
    for entry in entries:
        if isinstance(entry, dict):
            events.extend(_parse_entry(entry, received_at_ms))
        else:
            events.append(IgnoredEvent(None, "entry is not an object", entry, kind="entry"))
    return events


def event_key(event: InboundEvent) -> str:
    """Build a stable string identifying an event, for deduplication and logging.

    Facebook retries deliveries, so the same event can arrive in several
    bodies; equal keys mean the same event. Keys never contain a
    notification token.

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
    if isinstance(event, ReferralReceived):
        who = event.contact_id or f"user_ref:{event.user_ref}"
        return f"referral:{who}:{event.timestamp_ms}:{event.origin}"
    if isinstance(event, OptinReceived):
        who = event.contact_id or f"user_ref:{event.user_ref}"
        # A digest tells two opt-ins of one instant apart without putting the token in a log.
        what = _digest(_canonical([event.type, event.token, event.ref, event.user_ref]))[:16]
        return f"optin:{who}:{event.timestamp_ms}:{event.status or '-'}:{what}"
    if isinstance(event, ThreadControlChanged):
        return f"thread_control:{event.kind}:{event.contact_id}:{event.timestamp_ms}"
    if isinstance(event, UnusableEvent):
        return f"unusable:{event.kind}:{event.page_id or '-'}:{_digest(_canonical(event.raw))}"
    return f"ignored:{event.kind}:{event.page_id or '-'}:{_digest(_canonical(event.raw))}"


_EMOJI_ESCAPE = re.compile(r"\\u\{([0-9A-Fa-f]{1,6})\}")


def decode_emoji(text: str) -> str:
    """Decode the ``\\u{XXXX}`` escapes Facebook writes as text in a reaction's ``emoji``.

    Facebook sends ``"emoji": "\\\\u{2764}\\\\u{FE0F}"``: once the JSON is
    decoded, a backslash, ``u``, braces and hex digits, as text. Each
    escape naming a Unicode scalar value becomes that character; anything
    else (plain emoji, malformed or out-of-range escapes, surrogates) is
    kept as it is.

    Parameters:
      text(str): The ``emoji`` value.

    Returns:
      str: The decoded text, e.g. ``"❤️"``.
    """

    def character(match: re.Match[str]) -> str:
        code = int(match.group(1), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return match.group(0)
        return chr(code)

    return _EMOJI_ESCAPE.sub(character, text)


class _Malformed(Exception):
    """Raised internally to turn a messaging item into an IgnoredEvent."""


class _Unusable(Exception):
    """Raised internally to turn a messaging item into an UnusableEvent."""


@dataclass(frozen=True)
class _Item:
    """One messaging item and what it needs from its entry."""

    page_id: str
    body: dict[str, Any]
    kind: str
    fallback_ms: int | None  # the entry's time, else the time of receipt
    standby: bool

    def ignored(self, reason: str, kind: str | None = None) -> IgnoredEvent:
        return IgnoredEvent(self.page_id, reason, self.body, kind=kind or self.kind, standby=self.standby)

    def unusable(self, reason: str, kind: str | None = None) -> UnusableEvent:
        return UnusableEvent(self.page_id, kind or self.kind, reason, self.body, standby=self.standby)


def _parse_entry(entry: dict[str, Any], received_at_ms: int | None) -> Iterator[InboundEvent]:
    page_id = _as_id(entry.get("id"))
    if page_id is None:
        # Without the page we can't attribute any of its events to a channel.
        yield IgnoredEvent(None, "entry without page id", entry, kind="entry")
        return
    if len(page_id) > _PAGE_ID_MAX:
        yield UnusableEvent(None, "entry", f"page id longer than {_PAGE_ID_MAX} characters", entry)
        return

    present = [name for name in _EVENT_LISTS if name in entry]
    if not present:
        # e.g. a `changes` entry from a feed subscription.
        yield IgnoredEvent(page_id, "entry without messaging", entry, kind="entry")
        return

    entry_time = _optional_ms(entry.get("time"))
    fallback_ms = entry_time if entry_time is not None else received_at_ms
    for name in present:
        standby = name == "standby"
        items = entry[name]
        if not isinstance(items, list):
            yield IgnoredEvent(page_id, f"{name} is not a list", entry, kind="entry", standby=standby)
            continue
        for item in items:
            if not isinstance(item, dict):
                yield IgnoredEvent(page_id, "event is not an object", item, kind="event", standby=standby)
                continue
            yield from _parse_item(_Item(page_id, item, _kind_of(item), fallback_ms, standby))


def _kind_of(item: dict[str, Any]) -> str:
    supported = next((k for k in _SUPPORTED_KINDS if k in item), None)
    if supported is not None:
        return supported
    # Name the first non-envelope key so logs say *what* was skipped
    # (account_linking, app_roles, policy_enforcement, ...).
    return next((key for key in item if key not in _ENVELOPE_KEYS), "unknown")


def _parse_item(item: _Item) -> list[InboundEvent]:
    if item.kind not in _SUPPORTED_KINDS:
        reason = "unknown event" if item.kind == "unknown" else f"unsupported event: {item.kind}"
        return [item.ignored(reason)]
    try:
        if item.kind == "message":
            return _parse_message(item)
        if item.kind == "postback":
            return _parse_postback(item)
        if item.kind == "reaction":
            return [_parse_reaction(item)]
        if item.kind == "message_edit":
            return [_parse_message_edit(item)]
        if item.kind in ("delivery", "read"):
            return [_parse_receipt(item)]
        if item.kind == "referral":
            return [_parse_referral(item)]
        if item.kind == "optin":
            return [_parse_optin(item)]
        return [_parse_handover(item)]
    except _Malformed as e:
        return [item.ignored(str(e))]
    except _Unusable as e:
        return [item.unusable(str(e))]


def _parse_message(item: _Item) -> list[InboundEvent]:
    message = _object(item.body, "message")
    mid = _required_str(message, "mid", "message without mid")

    # Facebook sends is_echo only on echoes; anything but a literal true is a contact message.
    if message.get("is_echo") is True:
        contact_id = _party(item.body, "recipient")
        _check_length(mid, _MESSAGE_ID_MAX, "mid")
        _check_length(contact_id, _CONTACT_ID_MAX, "recipient id")
        return [
            InboundMessage(
                page_id=item.page_id,
                contact_id=contact_id,
                source_message_id=mid,
                content=item.body,
                from_contact=False,
                # The page wrote it, from our app, another app or the Page inbox: the sender is the channel.
                sender_id=item.page_id,
                sent_at_ms=_event_time(item),
                is_echo=True,
                # Absent when the page replied from the Page inbox rather than through an app.
                app_id=_as_id(message.get("app_id")),
                postback=None,
                standby=item.standby,
            )
        ]

    psid = _party(item.body, "sender")
    _check_length(mid, _MESSAGE_ID_MAX, "mid")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")
    sent_at_ms = _event_time(item)
    inbound = InboundMessage(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        content=item.body,
        from_contact=True,
        sender_id=psid,
        sent_at_ms=sent_at_ms,
        is_echo=False,
        app_id=None,
        postback=None,
        standby=item.standby,
    )
    return [inbound, *_carried_referral(item, message, psid, sent_at_ms, mid)]


def _parse_postback(item: _Item) -> list[InboundEvent]:
    postback = _object(item.body, "postback")
    psid = _party(item.body, "sender")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")
    sent_at_ms = _event_time(item)
    payload = postback.get("payload")

    mid = postback.get("mid")
    if not isinstance(mid, str) or not mid:
        # Older postbacks carry no mid; derive one from what identifies the tap
        # so that a retried delivery maps to the same message.
        mid = _synthetic_postback_id(psid, sent_at_ms, payload)
    _check_length(mid, _MESSAGE_ID_MAX, "mid")

    inbound = InboundMessage(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        content=item.body,
        from_contact=True,
        sender_id=psid,
        sent_at_ms=sent_at_ms,
        is_echo=False,
        app_id=None,
        postback={"payload": payload, "title": postback.get("title")},
        standby=item.standby,
    )
    return [inbound, *_carried_referral(item, postback, psid, sent_at_ms, mid)]


def _carried_referral(
    item: _Item, carrier: dict[str, Any], psid: str, timestamp_ms: int, mid: str
) -> list[InboundEvent]:
    """The referral inside a postback or a message, as an event of its own beside the carrier's."""
    if "referral" not in carrier:
        return []
    origin = item.kind
    kind = f"{origin}.referral"
    try:
        referral = _object(carrier, "referral")
        if "source" not in referral and "product" in referral:
            # A message sent from a Shops product page: no ref, source nor type, only the product, which stays
            # in the message's content.
            raise _Malformed("product referral, kept in the message's content")
        return [_referral_event(item, referral, psid, None, timestamp_ms, origin, mid)]
    except _Malformed as e:
        return [item.ignored(str(e), kind)]
    except _Unusable as e:
        return [item.unusable(str(e), kind)]


def _parse_referral(item: _Item) -> ReferralReceived:
    referral = _object(item.body, "referral")
    # Since Graph API v7.0 a Chat Plugin guest is named by user_ref, not by a PSID.
    sender = item.body.get("sender")
    psid = _as_id(sender.get("id")) if isinstance(sender, dict) else None
    user_ref = _as_id(sender.get("user_ref")) if isinstance(sender, dict) else None
    if psid is None and user_ref is None:
        raise _Malformed("missing sender")
    return _referral_event(item, referral, psid, user_ref, _event_time(item), "referral", None)


def _referral_event(
    item: _Item,
    referral: dict[str, Any],
    psid: str | None,
    user_ref: str | None,
    timestamp_ms: int,
    origin: str,
    mid: str | None,
) -> ReferralReceived:
    source = _optional_text(referral.get("source"))
    if not source:
        raise _Malformed("referral without source")
    if psid is not None:
        _check_length(psid, _CONTACT_ID_MAX, "sender id")
    if user_ref is not None:
        _check_length(user_ref, _OTHER_ID_MAX, "sender user_ref")
    ad_id = _as_id(referral.get("ad_id"))
    if ad_id is not None:
        _check_length(ad_id, _OTHER_ID_MAX, "ad_id")
    ads_context_data = referral.get("ads_context_data")

    return ReferralReceived(
        page_id=item.page_id,
        contact_id=psid,
        user_ref=user_ref,
        source=source,
        type=_optional_text(referral.get("type")),
        ref=_optional_text(referral.get("ref")),
        ad_id=ad_id,
        referer_uri=_optional_text(referral.get("referer_uri")),
        ads_context_data=dict(ads_context_data) if isinstance(ads_context_data, dict) else None,
        timestamp_ms=timestamp_ms,
        origin=origin,
        source_message_id=mid,
        standby=item.standby,
    )


def _parse_optin(item: _Item) -> OptinReceived:
    optin = _object(item.body, "optin")
    # The checkbox plugin's opt-ins come without sender: the person is known by optin.user_ref only.
    sender = item.body.get("sender")
    psid = _as_id(sender.get("id")) if isinstance(sender, dict) else None
    optin_type = optin.get("type")

    if optin_type == "notification_messages":
        if psid is None:
            raise _Malformed("missing sender")
        # A string in the reference; a number (a token is digits) is kept as its digits.
        token = _as_id(optin.get("notification_messages_token"))
        if token is None:
            raise _Malformed("notification_messages optin without token")
        status = _notification_status(optin.get("notification_messages_status"))
        _check_length(psid, _CONTACT_ID_MAX, "sender id")
        expiry = optin.get("token_expiry_timestamp")
        return OptinReceived(
            page_id=item.page_id,
            contact_id=psid,
            timestamp_ms=_event_time(item),
            type=optin_type,
            status=status,
            token=token,
            title=_optional_text(optin.get("title")),
            frequency=_optional_text(optin.get("notification_messages_frequency")),
            timezone=_optional_text(optin.get("notification_messages_timezone")),
            expires_at_ms=None if expiry is None else _millis(expiry, "token_expiry_timestamp"),
            token_status=_optional_text(optin.get("user_token_status")),
            payload=optin.get("payload"),
            ref=_optional_text(optin.get("ref")),
            user_ref=None,
            message_request=None,
            standby=item.standby,
        )

    if optin_type is not None:
        # e.g. the one-time notification requests ("one_time_notif_req") Facebook retired.
        raise _Malformed(f"unsupported optin type: {_short(optin_type)}")
    user_ref = _as_id(optin.get("user_ref"))
    if psid is None and user_ref is None:
        raise _Malformed("optin without sender nor user_ref")
    if psid is not None:
        _check_length(psid, _CONTACT_ID_MAX, "sender id")
    if user_ref is not None:
        _check_length(user_ref, _OTHER_ID_MAX, "user_ref")
    return OptinReceived(
        page_id=item.page_id,
        contact_id=psid,
        timestamp_ms=_event_time(item),
        type=None,
        status=None,
        token=None,
        title=None,
        frequency=None,
        timezone=None,
        expires_at_ms=None,
        token_status=None,
        payload=None,
        ref=_optional_text(optin.get("ref")),
        user_ref=user_ref,
        message_request=_optional_text(optin.get("message_request")),
        standby=item.standby,
    )


def _notification_status(value: object) -> str:
    if value is None:
        return "active"
    if isinstance(value, str):
        status = _NOTIFICATION_STATUSES.get(value.strip().upper().replace("_", " "))
        if status is not None:
            return status
    raise _Malformed(f"unsupported notification_messages_status: {_short(value)}")


def _parse_handover(item: _Item) -> ThreadControlChanged:
    handover = _object(item.body, item.kind)
    psid = _party(item.body, "sender")
    kind = _HANDOVERS[item.kind]
    new_owner = _app_id(handover, "new_owner_app_id")
    previous_owner = _app_id(handover, "previous_owner_app_id")
    requested_owner = _app_id(handover, "requested_owner_app_id")
    if kind == "pass" and new_owner is None:
        raise _Malformed("pass_thread_control without new_owner_app_id")
    if kind == "request" and requested_owner is None:
        raise _Malformed("request_thread_control without requested_owner_app_id")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")

    return ThreadControlChanged(
        page_id=item.page_id,
        contact_id=psid,
        kind=kind,
        new_owner_app_id=new_owner,
        previous_owner_app_id=previous_owner,
        requested_owner_app_id=requested_owner,
        metadata=_optional_text(handover.get("metadata")),
        timestamp_ms=_event_time(item),
        standby=item.standby,
    )


def _app_id(handover: dict[str, Any], key: str) -> str | None:
    # App ids arrive as strings in Facebook's reference and as numbers in the wild.
    app_id = _as_id(handover.get(key))
    if app_id is not None:
        _check_length(app_id, _OTHER_ID_MAX, key)
    return app_id


def _parse_reaction(item: _Item) -> ReactionChanged:
    reaction = _object(item.body, "reaction")
    action = reaction.get("action")
    if action not in ("react", "unreact"):
        raise _Malformed("unsupported reaction action")
    mid = _required_str(reaction, "mid", "reaction without mid")
    psid = _party(item.body, "sender")
    _check_length(mid, _MESSAGE_ID_MAX, "mid")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")
    emoji = _optional_str(reaction.get("emoji"))

    return ReactionChanged(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        action=action,
        # Both are optional: an unreact usually names neither.
        emoji=None if emoji is None else decode_emoji(emoji),
        reaction=_optional_str(reaction.get("reaction")),
        sent_at_ms=_event_time(item),
        standby=item.standby,
    )


def _parse_message_edit(item: _Item) -> MessageEdited:
    edit = _object(item.body, "message_edit")
    mid = _required_str(edit, "mid", "message_edit without mid")
    text = edit.get("text")
    if not isinstance(text, str):
        raise _Malformed("message_edit without text")
    num_edit = _num_edit(edit.get("num_edit"))
    psid = _party(item.body, "sender")
    _check_length(mid, _MESSAGE_ID_MAX, "mid")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")

    return MessageEdited(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        text=text,
        num_edit=num_edit,
        edited_at_ms=_event_time(item),
        standby=item.standby,
    )


def _parse_receipt(item: _Item) -> ReceiptWatermark:
    receipt = _object(item.body, item.kind)
    if receipt.get("watermark") is None:
        raise _Malformed(f"{item.kind} without watermark")
    mids: tuple[str, ...] = ()
    if "mids" in receipt:
        raw_mids = receipt["mids"]
        if not isinstance(raw_mids, list) or not all(isinstance(m, str) and m for m in raw_mids):
            raise _Malformed(f"{item.kind} with invalid mids")
        mids = tuple(raw_mids)
    psid = _party(item.body, "sender")
    _check_length(psid, _CONTACT_ID_MAX, "sender id")
    watermark_ms = _millis(receipt["watermark"], f"{item.kind} watermark")
    # Receipts don't need the event time, but one that can't be stored still means an unusable event.
    if item.body.get("timestamp") is not None:
        _millis(item.body["timestamp"], "timestamp")

    return ReceiptWatermark(
        page_id=item.page_id,
        contact_id=psid,
        kind="delivered" if item.kind == "delivery" else "read",
        watermark_ms=watermark_ms,
        source_message_ids=mids,
        standby=item.standby,
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


def _optional_text(value: object) -> str | None:
    # Documented as strings; a number (an ad's ref, a hand-written test payload) is kept as its digits.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _short(value: object) -> str:
    # For reasons, which end up in log lines: a value from the body, bounded.
    text = value if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "…"


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


def _check_length(value: str, limit: int, name: str) -> None:
    if len(value) > limit:
        raise _Unusable(f"{name} longer than {limit} characters")


def _millis(value: object, name: str) -> int:
    """``value`` as epoch milliseconds: an integer, or a string of digits (Facebook sends both)."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise _Unusable(f"{name} is not an integer")
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(_MAX_MS)):
            # Also keeps int() away from strings of thousands of digits, which it refuses.
            raise _Unusable(f"{name} is past year 9999")
        value = int(digits)
    # bool is an int subclass, but `true` is never a timestamp; floats (1e30, NaN) are not either.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Unusable(f"{name} is not an integer ({type(value).__name__})")
    if value < 0:
        raise _Unusable(f"{name} is negative")
    if value > _MAX_MS:
        raise _Unusable(f"{name} is past year 9999")
    return value


def _optional_ms(value: object) -> int | None:
    try:
        return None if value is None else _millis(value, "time")
    except _Unusable:
        return None


def _event_time(item: _Item) -> int:
    """The event's ``timestamp``; without one, its entry's ``time``, else the time the request was received."""
    value = item.body.get("timestamp")
    if value is not None:
        return _millis(value, "timestamp")
    if item.fallback_ms is None:
        raise _Unusable("missing timestamp")
    return item.fallback_ms


def _num_edit(value: object) -> int:
    # Facebook's reference shows num_edit as a quoted "<INT>", so accept
    # decimal strings as well as numbers.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
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
