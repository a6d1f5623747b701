"""Messenger's webhook bodies (``"object": "page"``): what only Messenger sends, beside what it shares.

Entries are pages (``entry.id`` the page id). Besides the kinds both platforms send alike (messages, postbacks,
reactions, referrals: :mod:`airy_actors.events.common`), Messenger sends echoes that name the sending app
(``message.app_id``), edits (``message_edit``), receipts as watermarks (``delivery``, ``read``), opt-ins (plugins,
Marketing Messages) and the handover protocol's events. Shapes: Meta's "Webhook Events Reference" of the Messenger
Platform, https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/.

Pure: no I/O, no database.
"""

from __future__ import annotations

from typing import Any

from airy_actors.events.common import (
    Item,
    contact_message,
    echo_message,
    event_time,
    parse_entries,
    parse_postback,
    parse_reaction,
    parse_referral,
)
from airy_actors.events.types import (
    InboundEvent,
    MessageEdited,
    OptinReceived,
    ReceiptWatermark,
    ThreadControlChanged,
)
from airy_actors.events.values import (
    CONTACT_ID_MAX,
    MESSAGE_ID_MAX,
    OTHER_ID_MAX,
    Malformed,
    as_id,
    check_length,
    millis,
    object_at,
    optional_text,
    party,
    required_str,
    short,
)
from airy_actors.models import FACEBOOK

OBJECT = "page"

#: ``OptinReceived.status`` for each ``notification_messages_status`` Facebook documents. Facebook's reference
#: writes the values with a space; other connectors record them with an underscore; both are accepted.
_NOTIFICATION_STATUSES = {"STOP NOTIFICATIONS": "stopped", "RESUME NOTIFICATIONS": "resumed"}

#: ``ThreadControlChanged.kind`` for each handover event.
_HANDOVERS = {"pass_thread_control": "pass", "take_thread_control": "take", "request_thread_control": "request"}

#: Supported event kinds, in the order they are looked for in an item.
KINDS = (
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


def parse_messenger_body(body: dict[str, Any], *, received_at_ms: int | None = None) -> list[InboundEvent]:
    """The events of a Messenger body, in the order Facebook sent them.

    Parameters:
      body: the decoded body, ``{"object": "page", "entry": [...]}``.
      received_at_ms: when the request was received (epoch ms), for events without a time of their own.
    """
    return parse_entries(body, platform=FACEBOOK, kinds=KINDS, parse_item=_parse_item, received_at_ms=received_at_ms)


def _parse_item(item: Item) -> list[InboundEvent]:
    if item.kind == "message":
        return _parse_message(item)
    if item.kind == "postback":
        return parse_postback(item)
    if item.kind == "reaction":
        return [parse_reaction(item)]
    if item.kind == "message_edit":
        return [_parse_message_edit(item)]
    if item.kind in ("delivery", "read"):
        return [_parse_receipt(item)]
    if item.kind == "referral":
        return [parse_referral(item)]
    if item.kind == "optin":
        return [_parse_optin(item)]
    return [_parse_handover(item)]


def _parse_message(item: Item) -> list[InboundEvent]:
    message = object_at(item.body, "message")
    mid = required_str(message, "mid", "message without mid")
    # Facebook sends is_echo only on echoes; anything but a literal true is a contact message.
    if message.get("is_echo") is True:
        return [echo_message(item, message, mid)]
    return contact_message(item, message, mid)


def _parse_optin(item: Item) -> OptinReceived:
    optin = object_at(item.body, "optin")
    # The checkbox plugin's opt-ins come without sender: the person is known by optin.user_ref only.
    sender = item.body.get("sender")
    psid = as_id(sender.get("id")) if isinstance(sender, dict) else None
    optin_type = optin.get("type")

    if optin_type == "notification_messages":
        if psid is None:
            raise Malformed("missing sender")
        # A string in the reference; a number (a token is digits) is kept as its digits.
        token = as_id(optin.get("notification_messages_token"))
        if token is None:
            raise Malformed("notification_messages optin without token")
        status = _notification_status(optin.get("notification_messages_status"))
        check_length(psid, CONTACT_ID_MAX, "sender id")
        expiry = optin.get("token_expiry_timestamp")
        return OptinReceived(
            page_id=item.page_id,
            contact_id=psid,
            timestamp_ms=event_time(item),
            type=optin_type,
            status=status,
            token=token,
            title=optional_text(optin.get("title")),
            frequency=optional_text(optin.get("notification_messages_frequency")),
            timezone=optional_text(optin.get("notification_messages_timezone")),
            expires_at_ms=None if expiry is None else millis(expiry, "token_expiry_timestamp"),
            token_status=optional_text(optin.get("user_token_status")),
            payload=optin.get("payload"),
            ref=optional_text(optin.get("ref")),
            user_ref=None,
            message_request=None,
            standby=item.standby,
            platform=item.platform,
        )

    if optin_type is not None:
        # e.g. the one-time notification requests ("one_time_notif_req") Facebook retired.
        raise Malformed(f"unsupported optin type: {short(optin_type)}")
    user_ref = as_id(optin.get("user_ref"))
    if psid is None and user_ref is None:
        raise Malformed("optin without sender nor user_ref")
    if psid is not None:
        check_length(psid, CONTACT_ID_MAX, "sender id")
    if user_ref is not None:
        check_length(user_ref, OTHER_ID_MAX, "user_ref")
    return OptinReceived(
        page_id=item.page_id,
        contact_id=psid,
        timestamp_ms=event_time(item),
        type=None,
        status=None,
        token=None,
        title=None,
        frequency=None,
        timezone=None,
        expires_at_ms=None,
        token_status=None,
        payload=None,
        ref=optional_text(optin.get("ref")),
        user_ref=user_ref,
        message_request=optional_text(optin.get("message_request")),
        standby=item.standby,
        platform=item.platform,
    )


def _notification_status(value: object) -> str:
    if value is None:
        return "active"
    if isinstance(value, str):
        status = _NOTIFICATION_STATUSES.get(value.strip().upper().replace("_", " "))
        if status is not None:
            return status
    raise Malformed(f"unsupported notification_messages_status: {short(value)}")


def _parse_handover(item: Item) -> ThreadControlChanged:
    handover = object_at(item.body, item.kind)
    psid = party(item.body, "sender")
    kind = _HANDOVERS[item.kind]
    new_owner = _app_id(handover, "new_owner_app_id")
    previous_owner = _app_id(handover, "previous_owner_app_id")
    requested_owner = _app_id(handover, "requested_owner_app_id")
    if kind == "pass" and new_owner is None:
        raise Malformed("pass_thread_control without new_owner_app_id")
    if kind == "request" and requested_owner is None:
        raise Malformed("request_thread_control without requested_owner_app_id")
    check_length(psid, CONTACT_ID_MAX, "sender id")

    return ThreadControlChanged(
        page_id=item.page_id,
        contact_id=psid,
        kind=kind,
        new_owner_app_id=new_owner,
        previous_owner_app_id=previous_owner,
        requested_owner_app_id=requested_owner,
        metadata=optional_text(handover.get("metadata")),
        timestamp_ms=event_time(item),
        standby=item.standby,
        platform=item.platform,
    )


def _app_id(handover: dict[str, Any], key: str) -> str | None:
    # App ids arrive as strings in Facebook's reference and as numbers in the wild.
    app_id = as_id(handover.get(key))
    if app_id is not None:
        check_length(app_id, OTHER_ID_MAX, key)
    return app_id


def _parse_message_edit(item: Item) -> MessageEdited:
    edit = object_at(item.body, "message_edit")
    mid = required_str(edit, "mid", "message_edit without mid")
    text = edit.get("text")
    if not isinstance(text, str):
        raise Malformed("message_edit without text")
    num_edit = _num_edit(edit.get("num_edit"))
    psid = party(item.body, "sender")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(psid, CONTACT_ID_MAX, "sender id")

    return MessageEdited(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        text=text,
        num_edit=num_edit,
        edited_at_ms=event_time(item),
        standby=item.standby,
        platform=item.platform,
    )


def _parse_receipt(item: Item) -> ReceiptWatermark:
    receipt = object_at(item.body, item.kind)
    if receipt.get("watermark") is None:
        raise Malformed(f"{item.kind} without watermark")
    mids: tuple[str, ...] = ()
    if "mids" in receipt:
        raw_mids = receipt["mids"]
        if not isinstance(raw_mids, list) or not all(isinstance(m, str) and m for m in raw_mids):
            raise Malformed(f"{item.kind} with invalid mids")
        mids = tuple(raw_mids)
    psid = party(item.body, "sender")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    watermark_ms = millis(receipt["watermark"], f"{item.kind} watermark")
    # Receipts don't need the event time, but one that can't be stored still means an unusable event.
    if item.body.get("timestamp") is not None:
        millis(item.body["timestamp"], "timestamp")

    return ReceiptWatermark(
        page_id=item.page_id,
        contact_id=psid,
        kind="delivered" if item.kind == "delivery" else "read",
        watermark_ms=watermark_ms,
        source_message_ids=mids,
        standby=item.standby,
        platform=item.platform,
    )


def _num_edit(value: object) -> int:
    # Facebook's reference shows num_edit as a quoted "<INT>", so accept
    # decimal strings as well as numbers.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Malformed("message_edit without integer num_edit")
