"""The domain events that Meta's webhook bodies become, for both platforms: Messenger and Instagram.

The parsers (:mod:`airy_actors.events.messenger`, :mod:`airy_actors.events.instagram`) turn a body into a flat,
ordered list of these; the ingestion applies them. Each event names the entry it came from (``page_id``: the
page id for Messenger, the Instagram account id for Instagram) and its ``platform`` (the channel source the entry
id belongs to, ``"facebook"`` or ``"instagram"``), so that it reaches the channel of its own platform even when a
page and its Instagram account are both connected.

Every messaging item becomes at least one event: a domain event; an :class:`UnusableEvent` when one of its values
cannot be stored (recorded as failed, not retried); or an :class:`IgnoredEvent` (one log line).
:func:`event_key` names an event stably, for deduplication and logs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from airy_actors.models import FACEBOOK

__all__ = [
    "IgnoredEvent",
    "InboundEvent",
    "InboundMessage",
    "MessageDeleted",
    "MessageEdited",
    "MessageRead",
    "OptinReceived",
    "ReactionChanged",
    "ReceiptWatermark",
    "ReferralReceived",
    "ThreadControlChanged",
    "UnusableEvent",
    "canonical",
    "digest",
    "event_key",
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
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK


@dataclass(frozen=True)
class ReceiptWatermark:
    """Every page message sent before ``watermark_ms`` was delivered to or read by the contact."""

    page_id: str
    contact_id: str
    kind: str
    watermark_ms: int
    source_message_ids: tuple[str, ...]
    standby: bool = False
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK


@dataclass(frozen=True)
class MessageDeleted:
    """A contact unsent (deleted) a message they sent earlier (Instagram's ``message.is_deleted``).

    The stored message keeps its content; ``deleted_at_ms`` (the event's time) says when it was unsent.
    """

    page_id: str
    contact_id: str
    source_message_id: str
    deleted_at_ms: int
    standby: bool = False
    platform: str = FACEBOOK


@dataclass(frozen=True)
class MessageRead:
    """A contact read a message, and so every earlier one of the conversation (Instagram's ``read.mid``).

    Messenger says the same with a watermark (:class:`ReceiptWatermark`); Instagram names the last message read.
    """

    page_id: str
    contact_id: str
    source_message_id: str
    read_at_ms: int
    standby: bool = False
    platform: str = FACEBOOK


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
    platform: str = FACEBOOK

    def log_fields(self) -> dict[str, object]:
        """The fields of the one log line for this event; never ``raw``."""
        return {
            "page_id": self.page_id,
            "platform": self.platform,
            "kind": self.kind,
            "reason": self.reason,
            "standby": self.standby,
        }


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
    platform: str = FACEBOOK

    def log_fields(self) -> dict[str, object]:
        """The fields of the one log line for this event; never ``raw``."""
        return {
            "page_id": self.page_id,
            "platform": self.platform,
            "kind": self.kind,
            "reason": self.reason,
            "standby": self.standby,
        }


InboundEvent = (
    InboundMessage
    | ReactionChanged
    | MessageEdited
    | MessageDeleted
    | ReceiptWatermark
    | MessageRead
    | ReferralReceived
    | OptinReceived
    | ThreadControlChanged
    | UnusableEvent
    | IgnoredEvent
)


def event_key(event: InboundEvent) -> str:
    """Build a stable string identifying an event, for deduplication and logging.

    Meta retries deliveries, so the same event can arrive in several
    bodies; equal keys mean the same event. Keys never contain a
    notification token.

    Parameters:
      event(InboundEvent): An event returned by ``parse_webhook_body``.

    Returns:
      str: The key, prefixed with the kind of event.
    """
    if isinstance(event, InboundMessage):
        return f"message:{event.source_message_id}"
    if isinstance(event, ReactionChanged):
        return f"reaction:{event.source_message_id}:{event.contact_id}:{event.action}:{event.sent_at_ms}"
    if isinstance(event, MessageEdited):
        return f"edit:{event.source_message_id}:{event.num_edit}"
    if isinstance(event, MessageDeleted):
        return f"deleted:{event.source_message_id}"
    if isinstance(event, ReceiptWatermark):
        return f"receipt:{event.kind}:{event.contact_id}:{event.watermark_ms}"
    if isinstance(event, MessageRead):
        return f"read:{event.contact_id}:{event.source_message_id}"
    if isinstance(event, ReferralReceived):
        who = event.contact_id or f"user_ref:{event.user_ref}"
        return f"referral:{who}:{event.timestamp_ms}:{event.origin}"
    if isinstance(event, OptinReceived):
        who = event.contact_id or f"user_ref:{event.user_ref}"
        # A digest tells two opt-ins of one instant apart without putting the token in a log.
        what = digest(canonical([event.type, event.token, event.ref, event.user_ref]))[:16]
        return f"optin:{who}:{event.timestamp_ms}:{event.status or '-'}:{what}"
    if isinstance(event, ThreadControlChanged):
        return f"thread_control:{event.kind}:{event.contact_id}:{event.timestamp_ms}"
    if isinstance(event, UnusableEvent):
        return f"unusable:{event.kind}:{event.page_id or '-'}:{digest(canonical(event.raw))}"
    return f"ignored:{event.kind}:{event.page_id or '-'}:{digest(canonical(event.raw))}"


def canonical(value: object) -> str:
    """``value`` as one stable text: sorted JSON, else its repr (for a value that is not JSON)."""
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


def digest(text: str) -> str:
    """The SHA-256 of ``text`` in hex, lone surrogates included."""
    # surrogatepass: json.loads happily produces lone surrogates from "\ud800".
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
