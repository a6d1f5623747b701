"""Instagram's webhook bodies (``"object": "instagram"``): what only Instagram sends, beside what it shares.

Instagram Messaging comes through the same Meta app and webhook as Messenger. Entries are Instagram professional
accounts (``entry.id`` the account id); contacts are Instagram-scoped ids (IGSIDs). Messages (text; attachments
``image``, ``video``, ``audio``, ``file``, ``share``, ``story_mention``, ``ig_reel``, ``reel``, ``ig_post``;
``reply_to`` a story or a message), postbacks, reactions and referrals (``ig.me`` links, ads) have Messenger's
shapes (:mod:`airy_actors.events.common`); a message's content is kept as received. What differs:

- ``message.is_deleted``: the contact unsent a message; it becomes :class:`MessageDeleted` (the stored message
  keeps its content).
- ``read`` names the last message read (``{"mid"}``), not a watermark: :class:`MessageRead`.
- echoes (``message.is_echo``, sent by the account itself) carry no ``app_id``: the ingestion tells ours by
  ``mid`` (see ``airy_actors.event_effects``).

Shapes: "Webhooks for Instagram Messaging", https://developers.facebook.com/docs/instagram-messaging/webhooks
(examples "Messages", "Message Reactions", "Messaging Postbacks", "Messaging Referral", "Messaging Seen").

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
from airy_actors.events.types import InboundEvent, MessageDeleted, MessageRead
from airy_actors.events.values import CONTACT_ID_MAX, MESSAGE_ID_MAX, check_length, object_at, party, required_str
from airy_actors.models import INSTAGRAM

OBJECT = "instagram"

#: Supported event kinds, in the order they are looked for in an item.
KINDS = ("message", "postback", "reaction", "read", "referral")


def parse_instagram_body(body: dict[str, Any], *, received_at_ms: int | None = None) -> list[InboundEvent]:
    """The events of an Instagram body, in the order Meta sent them.

    Parameters:
      body: the decoded body, ``{"object": "instagram", "entry": [...]}``.
      received_at_ms: when the request was received (epoch ms), for events without a time of their own.
    """
    return parse_entries(body, platform=INSTAGRAM, kinds=KINDS, parse_item=_parse_item, received_at_ms=received_at_ms)


def _parse_item(item: Item) -> list[InboundEvent]:
    if item.kind == "message":
        return _parse_message(item)
    if item.kind == "postback":
        return parse_postback(item)
    if item.kind == "reaction":
        return [parse_reaction(item)]
    if item.kind == "read":
        return [_parse_read(item)]
    return [parse_referral(item)]


def _parse_message(item: Item) -> list[InboundEvent]:
    message = object_at(item.body, "message")
    mid = required_str(message, "mid", "message without mid")
    # Each flag is sent only when true; anything but a literal true is a message from the contact.
    if message.get("is_echo") is True:
        return [echo_message(item, message, mid)]
    if message.get("is_deleted") is True:
        return [_deleted(item, mid)]
    return contact_message(item, message, mid)


def _deleted(item: Item, mid: str) -> MessageDeleted:
    psid = party(item.body, "sender")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    return MessageDeleted(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        deleted_at_ms=event_time(item),
        standby=item.standby,
        platform=item.platform,
    )


def _parse_read(item: Item) -> MessageRead:
    read = object_at(item.body, "read")
    mid = required_str(read, "mid", "read without mid")
    psid = party(item.body, "sender")
    check_length(mid, MESSAGE_ID_MAX, "mid")
    check_length(psid, CONTACT_ID_MAX, "sender id")
    return MessageRead(
        page_id=item.page_id,
        contact_id=psid,
        source_message_id=mid,
        read_at_ms=event_time(item),
        standby=item.standby,
        platform=item.platform,
    )
