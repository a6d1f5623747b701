"""The Instagram parser (airy_actors.events.instagram), through parse_webhook_body, on Meta's documented shapes.

Payloads: tests/instagram/payloads.py, after "Webhooks for Instagram Messaging",
https://developers.facebook.com/docs/instagram-messaging/webhooks.
"""

from __future__ import annotations

from typing import Any

import pytest

from airy_actors.events import (
    IgnoredEvent,
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageRead,
    ReactionChanged,
    ReferralReceived,
    UnusableEvent,
    event_key,
    parse_webhook_body,
)
from tests.instagram import payloads as ig
from tests.instagram.payloads import ACCOUNT_ID, IGSID, TIMESTAMP


def parse_one(item: dict[str, Any], key: str = "messaging") -> InboundEvent:
    events = parse_webhook_body(ig.body(ig.entry(item, key=key)))
    assert len(events) == 1, events
    return events[0]


def test_a_text_message_is_a_contact_message_of_the_instagram_platform() -> None:
    # Given a customer's text message ("Messages")
    item = ig.text("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3")

    # When it is parsed
    event = parse_one(item)

    # Then it is the customer's message to the account, kept as received, on the Instagram platform
    assert event == InboundMessage(
        page_id=ACCOUNT_ID,
        contact_id=IGSID,
        source_message_id="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3",
        content=item,
        from_contact=True,
        sender_id=IGSID,
        sent_at_ms=TIMESTAMP,
        is_echo=False,
        app_id=None,
        postback=None,
        platform="instagram",
    )


@pytest.mark.parametrize(
    "kind", ["image", "video", "audio", "file", "share", "story_mention", "ig_reel", "reel", "ig_post"]
)
def test_every_attachment_kind_is_a_message_whose_content_keeps_it(kind: str) -> None:
    item = ig.with_attachments(f"m_{kind}", ig.attachment(kind, f"https://lookaside.fbsbx.com/ig_messaging_cdn/{kind}"))

    event = parse_one(item)

    assert isinstance(event, InboundMessage) and event.from_contact and event.platform == "instagram"
    assert event.content["message"]["attachments"] == [
        {"type": kind, "payload": {"url": f"https://lookaside.fbsbx.com/ig_messaging_cdn/{kind}"}}
    ]


@pytest.mark.parametrize(
    "item",
    [
        ig.story_reply("m_story_reply", "https://lookaside.fbsbx.com/story.mp4"),
        ig.inline_reply("m_inline", "m_earlier"),
        ig.quick_reply("m_quick"),
        ig.unsupported("m_unsupported"),
    ],
    ids=["story reply", "inline reply", "quick reply", "unsupported media"],
)
def test_replies_quick_replies_and_unsupported_media_are_messages_kept_as_received(item: dict[str, Any]) -> None:
    event = parse_one(item)
    assert isinstance(event, InboundMessage) and event.from_contact
    assert event.content == item


def test_an_unsent_message_is_a_deletion_of_that_mid() -> None:
    event = parse_one(ig.deleted("m_gone", timestamp=TIMESTAMP + 60_000))

    assert event == MessageDeleted(ACCOUNT_ID, IGSID, "m_gone", TIMESTAMP + 60_000, platform="instagram")
    assert event_key(event) == "deleted:m_gone"


def test_an_echo_is_the_accounts_message_to_the_customer_without_app_id() -> None:
    event = parse_one(ig.echo("m_echo", "Yes, it is!"))

    assert isinstance(event, InboundMessage)
    assert (event.is_echo, event.from_contact, event.app_id) == (True, False, None)
    assert (event.contact_id, event.sender_id, event.page_id) == (IGSID, ACCOUNT_ID, ACCOUNT_ID)


def test_a_read_names_the_last_message_read() -> None:
    event = parse_one(ig.seen("m_ours", timestamp=TIMESTAMP + 5_000))

    assert event == MessageRead(ACCOUNT_ID, IGSID, "m_ours", TIMESTAMP + 5_000, platform="instagram")


def test_a_read_without_mid_is_ignored() -> None:
    item = ig.from_customer(read={"watermark": TIMESTAMP})
    assert parse_one(item) == IgnoredEvent(ACCOUNT_ID, "read without mid", item, kind="read", platform="instagram")


def test_reactions_decode_the_escaped_emoji_and_unreacts_name_none() -> None:
    react = parse_one(ig.reaction("m_1"))
    unreact = parse_one(ig.reaction("m_1", "unreact"))

    assert isinstance(react, ReactionChanged) and isinstance(unreact, ReactionChanged)
    assert (react.emoji, react.reaction, react.platform) == ("\u2764\ufe0f", "love", "instagram")
    assert (unreact.action, unreact.emoji, unreact.reaction) == ("unreact", None, None)


def test_a_postback_is_a_contact_message_with_its_payload() -> None:
    event = parse_one(ig.postback("m_pb", "Track my order", "TRACK_ORDER"))

    assert isinstance(event, InboundMessage)
    assert event.postback == {"payload": "TRACK_ORDER", "title": "Track my order"}
    assert event.source_message_id == "m_pb"


def test_an_igme_referral_and_an_ad_message_give_referrals_on_the_instagram_platform() -> None:
    alone = parse_one(ig.referral("summer_drop"))
    message, carried = parse_webhook_body(ig.body(ig.entry(ig.ad_message("m_ad"))))

    assert isinstance(alone, ReferralReceived)
    assert (alone.ref, alone.source, alone.type, alone.platform) == (
        "summer_drop",
        ig.REFERRAL_SOURCE,
        "OPEN_THREAD",
        "instagram",
    )
    assert isinstance(message, InboundMessage) and isinstance(carried, ReferralReceived)
    assert (carried.ad_id, carried.source, carried.origin, carried.source_message_id) == (
        "6045246247433",
        "ADS",
        "message",
        "m_ad",
    )


def test_standby_items_are_parsed_as_messaging_ones() -> None:
    event = parse_one(ig.text("m_standby"), key="standby")
    assert isinstance(event, InboundMessage) and event.standby and event.platform == "instagram"


def test_messenger_only_kinds_are_ignored_on_instagram() -> None:
    item = ig.from_customer(delivery={"watermark": TIMESTAMP})
    assert parse_one(item) == IgnoredEvent(
        ACCOUNT_ID, "unsupported event: delivery", item, kind="delivery", platform="instagram"
    )


def test_a_comments_entry_is_ignored_whole() -> None:
    # "Instagram Platform Webhook Notification Examples": comments come as `changes`, not `messaging`
    comments = {"id": ACCOUNT_ID, "time": 1, "changes": [{"field": "comments", "value": {"id": "1", "text": "hi"}}]}
    assert parse_webhook_body(ig.body(comments)) == [
        IgnoredEvent(ACCOUNT_ID, "entry without messaging", comments, kind="entry", platform="instagram")
    ]


def test_a_value_that_cannot_be_stored_makes_the_event_unusable() -> None:
    item = ig.text("m_late", timestamp=str(10**20))
    event = parse_one(item)
    assert isinstance(event, UnusableEvent) and event.platform == "instagram"
    assert event.reason == "timestamp is past year 9999"


def test_messenger_and_instagram_bodies_name_their_platforms() -> None:
    messenger = {"object": "page", "entry": [{"id": "1001", "time": 1, "messaging": [ig.text("m_fb")]}]}
    [from_messenger] = parse_webhook_body(messenger)
    [from_instagram] = parse_webhook_body(ig.body(ig.entry(ig.text("m_ig"))))
    assert (from_messenger.platform, from_messenger.page_id) == ("facebook", "1001")
    assert (from_instagram.platform, from_instagram.page_id) == ("instagram", ACCOUNT_ID)
