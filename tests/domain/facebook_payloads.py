"""Webhook bodies in the shapes Facebook sends, for the tests of airy_actors.facebook_events.

Each builder names the page of Meta's documentation (or the recorded payload) its shape comes from.
"""

from __future__ import annotations

from typing import Any

from airy_actors.facebook_events import InboundEvent, parse_webhook_body

PAGE_ID = "106402305263532"
PSID = "6871309196217453"
OTHER_PSID = "7212045871236690"
APP_ID = 1517435368476592
ENTRY_TIME = 1718023456789
TIMESTAMP = 1718023455123
RECEIVED_AT = 1718023457000


def body(*entries: dict[str, Any]) -> dict[str, Any]:
    """Wrap entries in a page webhook body, as Facebook POSTs it."""
    return {"object": "page", "entry": list(entries)}


def entry(*events: dict[str, Any], page_id: str = PAGE_ID, key: str = "messaging") -> dict[str, Any]:
    """Build one entry holding events under `messaging` (or `standby`)."""
    return {"id": page_id, "time": ENTRY_TIME, key: list(events)}


def from_contact(psid: str = PSID, timestamp: object = TIMESTAMP, **event: Any) -> dict[str, Any]:
    """Build a messaging item sent by a contact to the page."""
    return {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": timestamp, **event}


def parse_one(item: dict[str, Any], key: str = "messaging") -> InboundEvent:
    """Parse a body holding a single messaging item and return its only event."""
    events = parse_webhook_body(body(entry(item, key=key)))
    assert len(events) == 1, events
    return events[0]


def parse_item(item: dict[str, Any], key: str = "messaging") -> list[InboundEvent]:
    """Parse a body holding a single messaging item and return all its events."""
    return parse_webhook_body(body(entry(item, key=key)))


# -- messaging_referrals ------------------------------------------------------------------------------------
# "messaging_referrals Webhook Event Reference",
# https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messaging_referrals/
# (examples "m.me Link", "Ad Referral", "Customer Chat Plugin" old and new).


def shortlink_referral(ref: str = "spring_sale") -> dict[str, Any]:
    """m.me/<PAGE>?ref=... followed by a contact who already has a thread."""
    return from_contact(referral={"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"})


def ad_referral() -> dict[str, Any]:
    """A click on a Click-to-Messenger ad by a contact who already has a thread; ad_id unquoted in the doc."""
    return from_contact(
        referral={
            "ref": "ad_campaign_42",
            "ad_id": 6045246247433,
            "source": "ADS",
            "type": "OPEN_THREAD",
            "ads_context_data": {
                "ad_title": "Spring shoes",
                "photo_url": "https://scontent.xx.fbcdn.net/v/t45.1600-4/ad.jpg",
                "video_url": "https://scontent.xx.fbcdn.net/v/t15.5256-10/thumb.jpg",
                "post_id": "106402305263532_122106110072203",
                "product_id": "5881826311846284",
                "flow_id": "1021475212239815",
            },
        }
    )


def chat_plugin_referral(*, user_ref: str | None = None) -> dict[str, Any]:
    """The Chat Plugin on a website: with ``user_ref`` as Graph API v7.0+ sends it, else with a PSID (<= v6.0)."""
    item = from_contact(
        referral={
            "ref": "pricing_page",
            "source": "CUSTOMER_CHAT_PLUGIN",
            "type": "OPEN_THREAD",
            "referer_uri": "https://shop.example.com/pricing",
        }
    )
    if user_ref is not None:
        item["sender"] = {"user_ref": user_ref}
    return item


def postback_with_referral() -> dict[str, Any]:
    """The Get Started tap opening a new thread from an m.me link.

    "messaging_postbacks Webhooks Reference",
    https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_postbacks
    """
    return from_contact(
        postback={
            "mid": "m_postback_ref_1",
            "title": "Get Started",
            "payload": "GET_STARTED",
            "referral": {"ref": "spring_sale", "source": "SHORTLINK", "type": "OPEN_THREAD"},
        }
    )


def message_with_ad_referral() -> dict[str, Any]:
    """A message sent from an ad: the referral rides inside ``message``.

    "Webhooks for Instagram Messaging", example "Messages" (``referral`` "Included when a customer clicks an CTD
    ad"), https://developers.facebook.com/docs/instagram-messaging/webhooks
    """
    return from_contact(
        message={
            "mid": "m_from_ad_1",
            "text": "Is this still available?",
            "referral": {
                "ref": "ad_campaign_42",
                "ad_id": "6045246247433",
                "source": "ADS",
                "type": "OPEN_THREAD",
                "ads_context_data": {"ad_title": "Spring shoes", "photo_url": "https://scontent.xx.fbcdn.net/a.jpg"},
            },
        }
    )


def message_with_product_referral() -> dict[str, Any]:
    """A message sent from a Shops product page (same doc: "Included when a customer clicks an Instagram Shop
    product")."""
    return from_contact(
        message={"mid": "m_from_shop_1", "text": "Size 42?", "referral": {"product": {"id": "5881826311846284"}}}
    )


# -- messaging_optins ---------------------------------------------------------------------------------------
# "messaging_optins Webhook Event Reference" (Marketing Messages),
# https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_optins
# where every property, timestamp included, is a quoted string; and the payloads recorded by nyaruka/courier,
# handlers/meta/testdata/fba/notification_messages_optin.json and notification_messages_optout.json, where
# timestamps are numbers, token_expiry_timestamp is in milliseconds and the status is written with an underscore.

TOKEN = "8183222379117308817"
EXPIRY = 2145916800000  # 2038-01-01, as in courier's recorded opt-in


def notification_optin(**optin: Any) -> dict[str, Any]:
    """A contact accepting Marketing Messages, as courier recorded it; ``optin`` overrides or adds keys."""
    fields: dict[str, Any] = {
        "type": "notification_messages",
        "payload": "BIRD_FACTS",
        "notification_messages_token": TOKEN,
        "notification_messages_frequency": "DAILY",
        "token_expiry_timestamp": EXPIRY,
        "user_token_status": "NOT_REFRESHED",
        "notification_messages_timezone": "UTC",
        "title": "Bird Facts",
    }
    fields.update(optin)
    return from_contact(optin={key: value for key, value in fields.items() if value is not None})


def notification_optin_as_documented(status: str | None = None) -> dict[str, Any]:
    """The same event in the shape of Meta's reference: strings everywhere, frequency gone (v16+)."""
    optin = {
        "type": "notification_messages",
        "payload": "WEEKLY_DEALS",
        "notification_messages_token": TOKEN,
        "notification_messages_timezone": "Europe/Berlin",
        "token_expiry_timestamp": str(EXPIRY),
        "user_token_status": "REFRESHED",
        "title": "Weekly deals",
    }
    if status is not None:
        optin["notification_messages_status"] = status
    return from_contact(timestamp=str(TIMESTAMP), optin=optin)


def send_to_messenger_optin() -> dict[str, Any]:
    """The Send to Messenger plugin: ``optin.ref`` is its ``data-ref``.

    "messaging_optins Webhook Event Reference" (before Marketing Messages),
    https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messaging_optins
    """
    return from_contact(optin={"ref": "PASS_THROUGH_PARAM"})


def checkbox_optin() -> dict[str, Any]:
    """The checkbox plugin: "The sender object is not included" (same page); the person is ``optin.user_ref``."""
    return {
        "recipient": {"id": PAGE_ID},
        "timestamp": TIMESTAMP,
        "optin": {"ref": "PASS_THROUGH_PARAM", "user_ref": "UNIQUE_REF_PARAM_123"},
    }


# -- messaging_handovers ------------------------------------------------------------------------------------
# "messaging_handovers Webhook Event Reference",
# https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/messaging_handovers
# The example of request_thread_control shows sender "<USER_ID>" and recipient "<PSID>", but the page's own
# property tables (and every other example) say sender is the PSID and recipient the page: built that way here.

PAGE_INBOX_APP_ID = "263902037430900"
BOT_APP_ID = "1517435368476592"


def pass_thread_control(**fields: Any) -> dict[str, Any]:
    control = {
        "previous_owner_app_id": BOT_APP_ID,
        "new_owner_app_id": PAGE_INBOX_APP_ID,
        "metadata": "Additional content that the caller wants to set",
    }
    control.update(fields)
    return from_contact(pass_thread_control=control)


def take_thread_control(**fields: Any) -> dict[str, Any]:
    control = {
        "previous_owner_app_id": PAGE_INBOX_APP_ID,
        "new_owner_app_id": BOT_APP_ID,
        "metadata": "additional content that the caller wants to set",
    }
    control.update(fields)
    return from_contact(take_thread_control=control)


def request_thread_control(**fields: Any) -> dict[str, Any]:
    # The reference writes this app id as a number.
    control = {"requested_owner_app_id": 123456789, "metadata": "additional content that the caller wants to set"}
    control.update(fields)
    return from_contact(request_thread_control=control)
