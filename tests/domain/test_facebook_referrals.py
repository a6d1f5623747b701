"""Referrals (m.me links, ads, the Chat Plugin) alone or inside a postback or a message.

Payload shapes: see the builders in tests/domain/facebook_payloads.py, each citing its page of Meta's reference.
"""

from __future__ import annotations

from airy_actors.facebook_events import (
    IgnoredEvent,
    InboundMessage,
    ReferralReceived,
    UnusableEvent,
    event_key,
    parse_webhook_body,
)
from tests.domain.facebook_payloads import (
    PAGE_ID,
    PSID,
    TIMESTAMP,
    ad_referral,
    body,
    chat_plugin_referral,
    entry,
    from_contact,
    message_with_ad_referral,
    message_with_product_referral,
    parse_item,
    parse_one,
    postback_with_referral,
    shortlink_referral,
)


def test_mme_link_referral_is_a_referral_from_the_contact() -> None:
    # Given a contact who already has a thread following m.me/<page>?ref=spring_sale
    item = shortlink_referral()

    # When the body is parsed
    event = parse_one(item)

    # Then it is a referral of theirs, with the link's ref
    assert event == ReferralReceived(
        page_id=PAGE_ID,
        contact_id=PSID,
        user_ref=None,
        source="SHORTLINK",
        type="OPEN_THREAD",
        ref="spring_sale",
        ad_id=None,
        referer_uri=None,
        ads_context_data=None,
        timestamp_ms=TIMESTAMP,
        origin="referral",
        source_message_id=None,
    )


def test_ad_referral_carries_the_ad_id_as_a_string_and_its_context() -> None:
    # Given a click on an ad, whose ad_id Facebook writes as a number
    item = ad_referral()

    # When the body is parsed
    event = parse_one(item)

    # Then the ad id is a string and the ad's context is kept as sent
    assert isinstance(event, ReferralReceived)
    assert (event.source, event.type, event.ref, event.ad_id) == (
        "ADS",
        "OPEN_THREAD",
        "ad_campaign_42",
        "6045246247433",
    )
    assert event.ads_context_data == item["referral"]["ads_context_data"]
    assert event.referer_uri is None


def test_ad_referral_without_ref_has_no_ref() -> None:
    # Given an ad that specified no ref (the reference marks it optional)
    item = ad_referral()
    del item["referral"]["ref"]

    # When the body is parsed
    event = parse_one(item)

    # Then the referral has no ref but keeps the ad
    assert isinstance(event, ReferralReceived)
    assert event.ref is None and event.ad_id == "6045246247433"


def test_chat_plugin_referral_from_a_contact_keeps_the_referring_page() -> None:
    # Given the Chat Plugin referral of Graph API v6.0 and before, naming the contact by PSID
    item = chat_plugin_referral()

    # When the body is parsed
    event = parse_one(item)

    # Then it is the contact's referral, with the website it came from
    assert isinstance(event, ReferralReceived)
    assert (event.contact_id, event.user_ref) == (PSID, None)
    assert (event.source, event.referer_uri) == ("CUSTOMER_CHAT_PLUGIN", "https://shop.example.com/pricing")


def test_chat_plugin_referral_from_a_guest_has_a_user_ref_and_no_contact() -> None:
    # Given the Chat Plugin referral of Graph API v7.0+, naming the guest by user_ref only
    item = chat_plugin_referral(user_ref="4934828186557447")

    # When the body is parsed
    event = parse_one(item)

    # Then there is no contact, only the guest's user_ref
    assert isinstance(event, ReferralReceived)
    assert (event.contact_id, event.user_ref) == (None, "4934828186557447")
    assert event_key(event) == f"referral:user_ref:4934828186557447:{TIMESTAMP}:referral"


def test_postback_with_referral_gives_the_postback_then_the_referral() -> None:
    # Given a Get Started tap opening a thread from an m.me link
    item = postback_with_referral()

    # When the body is parsed
    postback, referral = parse_item(item)

    # Then the postback is still a message, and the referral follows it, pointing at it
    assert isinstance(postback, InboundMessage)
    assert postback.postback == {"payload": "GET_STARTED", "title": "Get Started"}
    assert referral == ReferralReceived(
        page_id=PAGE_ID,
        contact_id=PSID,
        user_ref=None,
        source="SHORTLINK",
        type="OPEN_THREAD",
        ref="spring_sale",
        ad_id=None,
        referer_uri=None,
        ads_context_data=None,
        timestamp_ms=TIMESTAMP,
        origin="postback",
        source_message_id="m_postback_ref_1",
    )


def test_message_sent_from_an_ad_gives_the_message_then_the_referral() -> None:
    # Given a message a contact sent from an ad
    item = message_with_ad_referral()

    # When the body is parsed
    message, referral = parse_item(item)

    # Then the message is stored as usual, and the ad referral follows it
    assert isinstance(message, InboundMessage) and message.source_message_id == "m_from_ad_1"
    assert isinstance(referral, ReferralReceived)
    assert (referral.origin, referral.source_message_id) == ("message", "m_from_ad_1")
    assert (referral.source, referral.ad_id) == ("ADS", "6045246247433")
    assert referral.ads_context_data == {"ad_title": "Spring shoes", "photo_url": "https://scontent.xx.fbcdn.net/a.jpg"}


def test_message_from_a_shop_product_keeps_the_product_in_content_and_says_so() -> None:
    # Given a message sent from a Shops product page: its referral names a product, no source
    item = message_with_product_referral()

    # When the body is parsed
    message, ignored = parse_item(item)

    # Then the message is kept, with the product in its content, and the referral is ignored with a reason
    assert isinstance(message, InboundMessage)
    assert message.content["message"]["referral"] == {"product": {"id": "5881826311846284"}}
    assert ignored == IgnoredEvent(
        PAGE_ID, "product referral, kept in the message's content", item, kind="message.referral"
    )


def test_malformed_referral_inside_a_postback_leaves_the_postback_alone() -> None:
    # Given a postback whose referral is not an object
    item = from_contact(postback={"mid": "m_pb_2", "title": "Go", "payload": "GO", "referral": "spring_sale"})

    # When the body is parsed
    postback, ignored = parse_item(item)

    # Then the postback is a message, and the referral is ignored with a reason
    assert isinstance(postback, InboundMessage)
    assert ignored == IgnoredEvent(PAGE_ID, "referral is not an object", item, kind="postback.referral")


def test_referral_with_an_ad_id_too_long_is_unusable_but_its_message_is_kept() -> None:
    # Given a message from an ad whose ad id is longer than any id
    item = message_with_ad_referral()
    item["message"]["referral"]["ad_id"] = "6" * 256

    # When the body is parsed
    message, unusable = parse_item(item)

    # Then only the referral is unusable
    assert isinstance(message, InboundMessage)
    assert isinstance(unusable, UnusableEvent)
    assert (unusable.kind, unusable.reason) == ("message.referral", "ad_id longer than 255 characters")


def test_referral_without_source_is_ignored() -> None:
    # Given a referral that doesn't say where the contact came from
    item = from_contact(referral={"ref": "x", "type": "OPEN_THREAD"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored with a reason
    assert event == IgnoredEvent(PAGE_ID, "referral without source", item, kind="referral")


def test_referral_without_sender_is_ignored() -> None:
    # Given a referral naming nobody
    item = {"recipient": {"id": PAGE_ID}, "timestamp": TIMESTAMP, "referral": {"source": "SHORTLINK"}}

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored
    assert event == IgnoredEvent(PAGE_ID, "missing sender", item, kind="referral")


def test_referral_under_standby_is_parsed_the_same_and_flagged() -> None:
    # Given a referral seen by an app that doesn't own the thread
    item = ad_referral()

    # When the body is parsed from standby, and from messaging
    (standby,) = parse_webhook_body(body(entry(item, key="standby")))
    (messaging,) = parse_webhook_body(body(entry(item)))

    # Then only the flag differs
    assert isinstance(standby, ReferralReceived) and isinstance(messaging, ReferralReceived)
    assert standby.standby and not messaging.standby
    assert event_key(standby) == event_key(messaging)


def test_referrals_of_the_three_sources_in_one_body_keep_their_order() -> None:
    # Given three referrals in one request
    items = [shortlink_referral(), ad_referral(), chat_plugin_referral()]

    # When the body is parsed
    events = parse_webhook_body(body(entry(*items)))

    # Then each gives one referral, in order
    assert [e.source for e in events if isinstance(e, ReferralReceived)] == ["SHORTLINK", "ADS", "CUSTOMER_CHAT_PLUGIN"]
