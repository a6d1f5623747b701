"""What Messenger's and Instagram's webhook bodies share, parsed once for both platforms.

Both platforms deliver ``{"object", "entry": [{"id", "time", "messaging": [...], "standby": [...]}]}`` to the same
webhook, with the same envelope for each messaging item (``sender``, ``recipient``, ``timestamp``) and the same
shapes for reactions, postbacks, referrals and contact messages. This module walks the entries and items
(:func:`parse_entries`) and turns the shared kinds of item into events, reading their values with
:mod:`airy_actors.events.values` (and emoji, which Meta escapes as text, with :func:`decode_emoji`). What differs —
echoes and edits, receipts, opt-ins and handovers on Messenger; unsent messages and reads by ``mid`` on Instagram
— lives in :mod:`airy_actors.events.messenger` and :mod:`airy_actors.events.instagram`.

Pure: no I/O, no database. Nothing here raises on bad input: a malformed item becomes an :class:`IgnoredEvent`,
an item with a value that cannot be stored an :class:`UnusableEvent`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airy_actors.events.types import (
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    ReactionChanged,
    ReferralReceived,
    UnusableEvent,
    canonical,
    digest,
)
from airy_actors.events.values import (
    CONTACT_ID_MAX,
    MESSAGE_ID_MAX,
    OTHER_ID_MAX,
    PAGE_ID_MAX,
    Malformed,
    Unusable,
    as_id,
    check_length,
    millis,
    object_at,
    optional_ms,
    optional_str,
    optional_text,
    party,
    required_str,
)

#: Keys that frame every messaging item rather than naming its kind.
ENVELOPE_KEYS = frozenset({"sender", "recipient", "timestamp"})

#: Entry keys holding messaging items. ``standby`` carries the events a secondary receiver sees under the
#: handover protocol (both platforms); they have the same shape as ``messaging``.
EVENT_LISTS = ("messaging", "standby")


@dataclass(frozen=True)
class Item:
    """One messaging item and what it needs from its entry."""

    page_id: str
    body: dict[str, Any]
    kind: str
    fallback_ms: int | None  # the entry's time, else the time of receipt
    standby: bool
    platform: str

    def ignored(self, reason: str, kind: str | None = None) -> IgnoredEvent:
        return IgnoredEvent(
            self.page_id, reason, self.body, kind=kind or self.kind, standby=self.standby, platform=self.platform
        )

    def unusable(self, reason: str, kind: str | None = None) -> UnusableEvent:
        return UnusableEvent(
            self.page_id, kind or self.kind, reason, self.body, standby=self.standby, platform=self.platform
        )


ItemParser = Callable[[Item], list[InboundEvent]]


def parse_entries(
    body: dict[str, Any], *, platform: str, kinds: tuple[str, ...], parse_item: ItemParser, received_at_ms: int | None
) -> list[InboundEvent]:
    """The events of every entry of a body whose ``object`` is already known to be ``platform``'s.

    Entries are processed in order, and so are the items within each entry; items under ``standby`` follow
    those under ``messaging``. An entry that isn't even an object gives one :class:`IgnoredEvent`.

    Parameters:
      body: the decoded body.
      platform: the channel source of the entries' ids (``"facebook"`` or ``"instagram"``).
      kinds: the kinds of item the platform's parser handles, in the order they are looked for in an item.
      parse_item: the platform's parser of one item of those kinds; it may raise :class:`Malformed` or
        :class:`Unusable`.
      received_at_ms: the time of receipt, for items without a time of their own.
    """
    entries = body.get("entry")
    if not isinstance(entries, list):
        return [IgnoredEvent(None, "missing entry list", body, kind="body", platform=platform)]
    events: list[InboundEvent] = []
    for entry in entries:
        if isinstance(entry, dict):
            events.extend(_parse_entry(entry, platform, kinds, parse_item, received_at_ms))
        else:
            events.append(IgnoredEvent(None, "entry is not an object", entry, kind="entry", platform=platform))
    return events


def _parse_entry(
    entry: dict[str, Any], platform: str, kinds: tuple[str, ...], parse_item: ItemParser, received_at_ms: int | None
) -> Iterator[InboundEvent]:
    page_id = as_id(entry.get("id"))
    if page_id is None:
        # Without the page (or account) we can't attribute any of its events to a channel.
        yield IgnoredEvent(None, "entry without page id", entry, kind="entry", platform=platform)
        return
    if len(page_id) > PAGE_ID_MAX:
        yield UnusableEvent(None, "entry", f"page id longer than {PAGE_ID_MAX} characters", entry, platform=platform)
        return

    present = [name for name in EVENT_LISTS if name in entry]
    if not present:
        # e.g. a `changes` entry from a feed or an Instagram comments subscription.
        yield IgnoredEvent(page_id, "entry without messaging", entry, kind="entry", platform=platform)
        return

    entry_time = optional_ms(entry.get("time"))
    fallback_ms = entry_time if entry_time is not None else received_at_ms
    for name in present:
        standby = name == "standby"
        items = entry[name]
        if not isinstance(items, list):
            yield IgnoredEvent(
                page_id, f"{name} is not a list", entry, kind="entry", standby=standby, platform=platform
            )
            continue
        for raw in items:
            if not isinstance(raw, dict):
                yield IgnoredEvent(
                    page_id, "event is not an object", raw, kind="event", standby=standby, platform=platform
                )
                continue
            item = Item(page_id, raw, _kind_of(raw, kinds), fallback_ms, standby, platform)
            yield from _parse_item(item, kinds, parse_item)


def _kind_of(item: dict[str, Any], kinds: tuple[str, ...]) -> str:
    supported = next((k for k in kinds if k in item), None)
    if supported is not None:
        return supported
    # Name the first non-envelope key so logs say *what* was skipped
    # (account_linking, app_roles, policy_enforcement, ...).
    return next((key for key in item if key not in ENVELOPE_KEYS), "unknown")


def _parse_item(item: Item, kinds: tuple[str, ...], parse_item: ItemParser) -> list[InboundEvent]:
    if item.kind not in kinds:
        reason = "unknown event" if item.kind == "unknown" else f"unsupported event: {item.kind}"
        return [item.ignored(reason)]
    try:
        return parse_item(item)
    except Malformed as e:
        return [item.ignored(str(e))]
    except Unusable as e:
        return [item.unusable(str(e))]


# --- the kinds of item both platforms send alike ---------------------------------------------------------


def contact_message(item: Item, message: dict[str, Any], mid: str) -> list[InboundEvent]:
    """A message the contact wrote (not an echo), and the referral it may carry (a message sent from an ad)."""
    psid = party(item.body, "sender")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    sent_at_ms = event_time(item)
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
        platform=item.platform,
    )
    return [inbound, *carried_referral(item, message, psid, sent_at_ms, mid)]


def echo_message(item: Item, message: dict[str, Any], mid: str) -> InboundMessage:
    """A message the channel wrote, from our app, another app or the platform's own inbox: its echo."""
    contact_id = party(item.body, "recipient")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(contact_id, CONTACT_ID_MAX, "recipient id")
    return InboundMessage(
        page_id=item.page_id,
        contact_id=contact_id,
        source_message_id=mid,
        content=item.body,
        from_contact=False,
        # Whoever wrote it, the sender is the channel: the page, or the Instagram account.
        sender_id=item.page_id,
        sent_at_ms=event_time(item),
        is_echo=True,
        # Messenger names the app (absent for the Page inbox); Instagram never does.
        app_id=as_id(message.get("app_id")),
        postback=None,
        standby=item.standby,
        platform=item.platform,
    )


def parse_postback(item: Item) -> list[InboundEvent]:
    """A button tap (Messenger) or an Icebreaker or template button (Instagram), as a contact message."""
    postback = object_at(item.body, "postback")
    psid = party(item.body, "sender")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    sent_at_ms = event_time(item)
    payload = postback.get("payload")

    mid = postback.get("mid")
    if not isinstance(mid, str) or not mid:
        # Older postbacks carry no mid; derive one from what identifies the tap
        # so that a retried delivery maps to the same message.
        mid = _synthetic_postback_id(psid, sent_at_ms, payload)
    check_length(mid, MESSAGE_ID_MAX, "mid")

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
        platform=item.platform,
    )
    return [inbound, *carried_referral(item, postback, psid, sent_at_ms, mid)]


def carried_referral(item: Item, carrier: dict[str, Any], psid: str, timestamp_ms: int, mid: str) -> list[InboundEvent]:
    """The referral inside a postback or a message, as an event of its own beside the carrier's."""
    if "referral" not in carrier:
        return []
    origin = item.kind
    kind = f"{origin}.referral"
    try:
        referral = object_at(carrier, "referral")
        if "source" not in referral and "product" in referral:
            # A message sent from a Shops product page: no ref, source nor type, only the product, which stays
            # in the message's content.
            raise Malformed("product referral, kept in the message's content")
        return [_referral_event(item, referral, psid, None, timestamp_ms, origin, mid)]
    except Malformed as e:
        return [item.ignored(str(e), kind)]
    except Unusable as e:
        return [item.unusable(str(e), kind)]


def parse_referral(item: Item) -> ReferralReceived:
    """A referral alone: an m.me or ig.me link, an ad, the Chat Plugin, followed in an existing thread."""
    referral = object_at(item.body, "referral")
    # Since Graph API v7.0 a Chat Plugin guest is named by user_ref, not by a PSID.
    sender = item.body.get("sender")
    psid = as_id(sender.get("id")) if isinstance(sender, dict) else None
    user_ref = as_id(sender.get("user_ref")) if isinstance(sender, dict) else None
    if psid is None and user_ref is None:
        raise Malformed("missing sender")
    return _referral_event(item, referral, psid, user_ref, event_time(item), "referral", None)


def _referral_event(
    item: Item,
    referral: dict[str, Any],
    psid: str | None,
    user_ref: str | None,
    timestamp_ms: int,
    origin: str,
    mid: str | None,
) -> ReferralReceived:
    source = optional_text(referral.get("source"))
    if not source:
        raise Malformed("referral without source")
    if psid is not None:
        check_length(psid, CONTACT_ID_MAX, "sender id")
    if user_ref is not None:
        check_length(user_ref, OTHER_ID_MAX, "sender user_ref")
    ad_id = as_id(referral.get("ad_id"))
    if ad_id is not None:
        check_length(ad_id, OTHER_ID_MAX, "ad_id")
    ads_context_data = referral.get("ads_context_data")

    return ReferralReceived(
        page_id=item.page_id,
        contact_id=psid,
        user_ref=user_ref,
        source=source,
        type=optional_text(referral.get("type")),
        ref=optional_text(referral.get("ref")),
        ad_id=ad_id,
        referer_uri=optional_text(referral.get("referer_uri")),
        ads_context_data=dict(ads_context_data) if isinstance(ads_context_data, dict) else None,
        timestamp_ms=timestamp_ms,
        origin=origin,
        source_message_id=mid,
        standby=item.standby,
        platform=item.platform,
    )


def parse_reaction(item: Item) -> ReactionChanged:
    """A contact reacting to a message, or withdrawing the reaction."""
    reaction = object_at(item.body, "reaction")
    action = reaction.get("action")
    if action not in ("react", "unreact"):
        raise Malformed("unsupported reaction action")
    mid = required_str(reaction, "mid", "reaction without mid")
    psid = party(item.body, "sender")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    emoji = optional_str(reaction.get("emoji"))

    return ReactionChanged(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        action=action,
        # Both are optional: an unreact usually names neither.
        emoji=None if emoji is None else decode_emoji(emoji),
        reaction=optional_str(reaction.get("reaction")),
        sent_at_ms=event_time(item),
        standby=item.standby,
        platform=item.platform,
    )


_EMOJI_ESCAPE = re.compile(r"\\u\{([0-9A-Fa-f]{1,6})\}")


def decode_emoji(text: str) -> str:
    """Decode the ``\\u{XXXX}`` escapes Meta writes as text in a reaction's ``emoji``.

    Meta sends ``"emoji": "\\\\u{2764}\\\\u{FE0F}"``: once the JSON is
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


def event_time(item: Item) -> int:
    """The event's ``timestamp``; without one, its entry's ``time``, else the time the request was received."""
    value = item.body.get("timestamp")
    if value is not None:
        return millis(value, "timestamp")
    if item.fallback_ms is None:
        raise Unusable("missing timestamp")
    return item.fallback_ms


def _synthetic_postback_id(psid: str, sent_at_ms: int, payload: object) -> str:
    if isinstance(payload, str):
        payload_text = payload
    else:
        payload_text = "" if payload is None else canonical(payload)
    return f"postback:{digest(f'{psid}|{sent_at_ms}|{payload_text}')[:32]}"
