"""Instagram webhook bodies in the shapes Meta sends them, for the Instagram tests.

Every shape comes from "Webhooks for Instagram Messaging",
https://developers.facebook.com/docs/instagram-messaging/webhooks (the same page is served as
https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook/), whose examples are named
beside each builder: "Messages", "Message Reactions", "Messaging Postbacks", "Messaging Referral" and
"Messaging Seen". The envelope is always ``{"object": "instagram", "entry": [{"id": <IGID>, "time",
"messaging": [...]}]}``: the entry's id is the Instagram professional account, ``sender`` the customer's IGSID
(for an echo, the account itself, ``recipient`` the IGSID).
"""

from __future__ import annotations

import json
from typing import Any

PAGE_ID = "1001"
PAGE_NAME = "Acme Support"
PAGE_TOKEN = "EAAPageToken-1001-secret"
ACCOUNT_ID = "17841405822304914"
ACCOUNT_USERNAME = "acme.shop"
ACCOUNT_PICTURE = "https://scontent.cdninstagram.com/v/t51.2885-19/acme_n.jpg"
IGSID = "6812045871236690"
OTHER_IGSID = "7212045871236691"
ENTRY_TIME = 1_718_023_456_789
TIMESTAMP = 1_718_023_455_123


def body(*entries: dict[str, Any]) -> dict[str, Any]:
    """Entries in an Instagram body."""
    return {"object": "instagram", "entry": list(entries)}


def raw(*entries: dict[str, Any]) -> bytes:
    """An Instagram body as the bytes Meta posts."""
    return json.dumps(body(*entries)).encode()


def entry(*events: dict[str, Any], account_id: str = ACCOUNT_ID, key: str = "messaging") -> dict[str, Any]:
    return {"id": account_id, "time": ENTRY_TIME, key: list(events)}


def from_customer(
    igsid: str = IGSID, *, timestamp: object = TIMESTAMP, account_id: str = ACCOUNT_ID, **event: Any
) -> dict[str, Any]:
    """A messaging item from a customer to the account."""
    return {"sender": {"id": igsid}, "recipient": {"id": account_id}, "timestamp": timestamp, **event}


# -- "Messages" ---------------------------------------------------------------------------------------------


def text(mid: str, words: str = "Hi! Is the red one in stock?", **fields: Any) -> dict[str, Any]:
    """A customer's text message."""
    return from_customer(message={"mid": mid, "text": words}, **fields)


def with_attachments(mid: str, *attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A message with media, a share, a story mention, a reel or a post: ``"attachments": [{type, payload: {url}}]``
    (the doc: "Can be audio, file, image (image or sticker), share, story_mention, video, ig_reel or reel")."""
    return from_customer(message={"mid": mid, "attachments": list(attachments)}, **fields)


def attachment(kind: str, url: str) -> dict[str, Any]:
    return {"type": kind, "payload": {"url": url}}


def story_reply(mid: str, story_url: str, story_id: str = "17887498072083520") -> dict[str, Any]:
    """A reply to the account's story: ``"reply_to": {"story": {"url", "id"}}``."""
    message = {"mid": mid, "text": "Love this!", "reply_to": {"story": {"url": story_url, "id": story_id}}}
    return from_customer(message=message)


def inline_reply(mid: str, replied_mid: str) -> dict[str, Any]:
    """An inline reply to an earlier message: ``"reply_to": {"mid"}``."""
    return from_customer(message={"mid": mid, "text": "This one", "reply_to": {"mid": replied_mid}})


def quick_reply(mid: str, payload: str = "SIZE_M") -> dict[str, Any]:
    return from_customer(message={"mid": mid, "text": "M", "quick_reply": {"payload": payload}})


def unsupported(mid: str) -> dict[str, Any]:
    """"is_unsupported": "Included when a customer sends a message with unsupported media"."""
    return from_customer(message={"mid": mid, "is_unsupported": True})


def deleted(mid: str, *, timestamp: int = TIMESTAMP + 60_000) -> dict[str, Any]:
    """"is_deleted": "Included when a customer deletes a message"; the mid is the deleted message's."""
    return from_customer(message={"mid": mid, "is_deleted": True}, timestamp=timestamp)


def echo(mid: str, words: str, igsid: str = IGSID, *, timestamp: int = TIMESTAMP + 1_000) -> dict[str, Any]:
    """"is_echo": "Included when your business sends a message to the customer": sent by the account itself.
    Instagram echoes carry no app_id."""
    return {
        "sender": {"id": ACCOUNT_ID},
        "recipient": {"id": igsid},
        "timestamp": timestamp,
        "message": {"mid": mid, "text": words, "is_echo": True},
    }


def ad_message(mid: str) -> dict[str, Any]:
    """A message from a Click To Direct ad: ``referral`` with ``ad_id``, ``source: "ADS"``, ``ads_context_data``."""
    referral = {
        "ref": "spring_sale",
        "ad_id": "6045246247433",
        "source": "ADS",
        "type": "OPEN_THREAD",
        "ads_context_data": {"ad_title": "Spring shoes", "photo_url": "https://scontent.cdninstagram.com/ad.jpg"},
    }
    return from_customer(message={"mid": mid, "text": "Still available?", "referral": referral})


# -- "Message Reactions" ------------------------------------------------------------------------------------


def reaction(mid: str, action: str = "react", *, timestamp: int = TIMESTAMP + 2_000) -> dict[str, Any]:
    """A reaction; ``reaction`` and ``emoji`` are absent on an unreact ("optional, to unreact ...")."""
    fields: dict[str, Any] = {"mid": mid, "action": action}
    if action == "react":
        fields.update(reaction="love", emoji="\\u{2764}\\u{FE0F}")
    return from_customer(reaction=fields, timestamp=timestamp)


# -- "Messaging Postbacks", "Messaging Referral", "Messaging Seen" ------------------------------------------


def postback(mid: str, title: str = "Track my order", payload: str = "TRACK_ORDER") -> dict[str, Any]:
    """An Icebreaker option or a Generic Template button."""
    return from_customer(postback={"mid": mid, "title": title, "payload": payload})


REFERRAL_SOURCE = "IGME-SOURCE-LINK"  # as the doc's example writes it: kept as sent, whatever Meta puts there


def referral(ref: str = "summer_drop", *, timestamp: int = TIMESTAMP) -> dict[str, Any]:
    """An ig.me link with a ref parameter, followed in an existing conversation."""
    fields = {"ref": ref, "source": REFERRAL_SOURCE, "type": "OPEN_THREAD"}
    return from_customer(referral=fields, timestamp=timestamp)


def seen(mid: str, *, timestamp: int = TIMESTAMP + 5_000) -> dict[str, Any]:
    """The customer read the message ``mid``: ``"read": {"mid"}``."""
    return from_customer(read={"mid": mid}, timestamp=timestamp)
