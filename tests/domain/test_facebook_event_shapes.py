"""Shapes Facebook really sends, and values that cannot be stored (SPEC §3, after the event table).

Reactions follow "message_reactions Webhook Event Reference",
https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/message-reactions
where the emoji is written ``"\\u{2764}\\u{FE0F}"``; timestamps as strings of digits follow
"messaging_postbacks Webhooks Reference" and "messaging_optins Webhook Event Reference" (quoted timestamps);
the other items follow "messages Webhook Event Reference",
https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airy_actors.facebook_events import (
    IgnoredEvent,
    InboundMessage,
    MessageEdited,
    ReactionChanged,
    ReceiptWatermark,
    UnusableEvent,
    decode_emoji,
    event_key,
    parse_webhook_body,
)
from tests.domain.facebook_payloads import (
    ENTRY_TIME,
    PAGE_ID,
    PSID,
    RECEIVED_AT,
    TIMESTAMP,
    body,
    entry,
    from_contact,
    parse_one,
)

# -- Escaped emoji ------------------------------------------------------------------------------------------


def test_reaction_emoji_escaped_as_text_is_decoded() -> None:
    # Given a reaction as it arrives on the wire: "\\u{2764}\\u{FE0F}" in the JSON, i.e. the text \u{2764}\u{FE0F}
    raw = (
        '{"object": "page", "entry": [{"id": "106402305263532", "time": 1718023456789, "messaging": [{'
        '"sender": {"id": "6871309196217453"}, "recipient": {"id": "106402305263532"}, "timestamp": 1718023455123,'
        '"reaction": {"reaction": "love", "emoji": "\\\\u{2764}\\\\u{FE0F}", "action": "react", "mid": "m_1"}}]}]}'
    )
    assert json.loads(raw)["entry"][0]["messaging"][0]["reaction"]["emoji"] == r"\u{2764}\u{FE0F}"

    # When the decoded body is parsed
    (event,) = parse_webhook_body(json.loads(raw))

    # Then the emoji is the heart itself
    assert event == ReactionChanged(PAGE_ID, PSID, "m_1", "react", "❤️", "love", TIMESTAMP)


@pytest.mark.parametrize(
    "emoji, expected",
    [
        ("❤️", "❤️"),  # already decoded
        ("👍", "👍"),
        (r"\u{1F44D}", "👍"),  # five hex digits
        (r"\u{1f602}", "😂"),  # lower case
        (r"\u{2764}\u{FE0F} x", "❤️ x"),
        (r"\u{}", r"\u{}"),  # no digits
        (r"\u{ZZ}", r"\u{ZZ}"),  # not hex
        (r"\u{110000}", r"\u{110000}"),  # past Unicode
        (r"\u{D83D}", r"\u{D83D}"),  # a lone surrogate, which no database stores
        (r"\u{2764", r"\u{2764"),  # unclosed
        (r"\u{1234567}", r"\u{1234567}"),  # seven digits
        ("\\", "\\"),
        ("", ""),
    ],
)
def test_decode_emoji_decodes_escapes_and_keeps_everything_else(emoji: str, expected: str) -> None:
    # When an emoji value is decoded
    # Then valid escapes become characters and anything else is kept as text
    assert decode_emoji(emoji) == expected


def test_reaction_with_malformed_escape_keeps_it_as_text() -> None:
    # Given a reaction whose emoji escape is broken
    item = from_contact(reaction={"reaction": "other", "emoji": r"\u{XYZ}", "action": "react", "mid": "m_1"})

    # When the body is parsed
    event = parse_one(item)

    # Then the reaction is kept, with the text as sent
    assert isinstance(event, ReactionChanged) and event.emoji == r"\u{XYZ}"


# -- Timestamps and watermarks as strings of digits ---------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        from_contact(timestamp=str(TIMESTAMP), message={"mid": "m_1", "text": "hi"}),
        from_contact(timestamp=str(TIMESTAMP), postback={"mid": "m_2", "title": "Go", "payload": "GO"}),
        from_contact(timestamp=str(TIMESTAMP), reaction={"action": "react", "emoji": "👍", "mid": "m_1"}),
        from_contact(timestamp=str(TIMESTAMP), message_edit={"mid": "m_1", "text": "hello", "num_edit": "1"}),
    ],
)
def test_timestamp_as_a_string_of_digits_is_the_same_time(item: dict[str, Any]) -> None:
    # Given an event whose timestamp is a quoted number
    # When the body is parsed
    event = parse_one(item)

    # Then its time is the integer
    assert isinstance(event, InboundMessage | ReactionChanged | MessageEdited)
    time = event.edited_at_ms if isinstance(event, MessageEdited) else event.sent_at_ms
    assert time == TIMESTAMP


def test_leading_zeros_do_not_change_a_timestamp() -> None:
    # Given a timestamp written with thousands of leading zeros
    item = from_contact(timestamp="0" * 5000 + str(TIMESTAMP), message={"mid": "m_1", "text": "hi"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is the same time
    assert isinstance(event, InboundMessage) and event.sent_at_ms == TIMESTAMP


@pytest.mark.parametrize("kind", ["delivery", "read"])
def test_watermark_as_a_string_of_digits_is_the_same_watermark(kind: str) -> None:
    # Given a receipt whose watermark is a quoted number
    item = from_contact(**{kind: {"watermark": "1718023450000"}})

    # When the body is parsed
    event = parse_one(item)

    # Then its watermark is the integer
    assert isinstance(event, ReceiptWatermark) and event.watermark_ms == 1718023450000


# -- Missing timestamps -------------------------------------------------------------------------------------


def message_without_timestamp() -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "message": {"mid": "m_1", "text": "hi"}}


def test_missing_timestamp_takes_the_entrys_time() -> None:
    # Given a message without timestamp, in an entry with a time
    raw = body(entry(message_without_timestamp()))

    # When it is parsed, even with a time of receipt
    (event,) = parse_webhook_body(raw, received_at_ms=RECEIVED_AT)

    # Then the entry's time wins
    assert isinstance(event, InboundMessage) and event.sent_at_ms == ENTRY_TIME


@pytest.mark.parametrize("entry_time", [None, "later", 1e30])
def test_missing_timestamp_without_entry_time_takes_the_time_of_receipt(entry_time: object) -> None:
    # Given a message without timestamp, in an entry without a usable time
    item = {"id": PAGE_ID, "messaging": [message_without_timestamp()]}
    if entry_time is not None:
        item["time"] = entry_time

    # When it is parsed with the time the request was received
    (event,) = parse_webhook_body(body(item), received_at_ms=RECEIVED_AT)

    # Then that time is used
    assert isinstance(event, InboundMessage) and event.sent_at_ms == RECEIVED_AT


def test_missing_timestamp_with_no_time_at_all_is_unusable() -> None:
    # Given a message without timestamp, in an entry without time, and no time of receipt
    item = message_without_timestamp()

    # When it is parsed
    (event,) = parse_webhook_body(body({"id": PAGE_ID, "messaging": [item]}))

    # Then it cannot be stored
    assert event == UnusableEvent(PAGE_ID, "message", "missing timestamp", item)


# -- Values that cannot be stored ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp, reason",
    [
        (253_402_300_800_000, "timestamp is past year 9999"),
        ("253402300800000", "timestamp is past year 9999"),
        ("9" * 5000, "timestamp is past year 9999"),
        (1e30, "timestamp is not an integer (float)"),
        (float("nan"), "timestamp is not an integer (float)"),
        (-1, "timestamp is negative"),
        ("-1", "timestamp is not an integer"),
        (" 1718023455123", "timestamp is not an integer"),
        ("١٧١٨", "timestamp is not an integer"),  # digits, but not ASCII ones
        ([TIMESTAMP], "timestamp is not an integer (list)"),
    ],
)
def test_timestamp_that_cannot_be_stored_makes_the_event_unusable(timestamp: object, reason: str) -> None:
    # Given a message whose timestamp no column or ISO time can hold
    item = from_contact(timestamp=timestamp, message={"mid": "m_1", "text": "hi"})

    # When the body is parsed
    event = parse_one(item)

    # Then that event is unusable, with the reason
    assert event == UnusableEvent(PAGE_ID, "message", reason, item)


def test_the_last_millisecond_of_year_9999_is_a_timestamp() -> None:
    # Given a message sent at 9999-12-31T23:59:59.999Z
    item = from_contact(timestamp=253_402_300_799_999, message={"mid": "m_1", "text": "hi"})

    # When the body is parsed
    # Then it is a message
    assert isinstance(parse_one(item), InboundMessage)


@pytest.mark.parametrize(
    "watermark, reason",
    [
        (1e30, "read watermark is not an integer (float)"),
        (float("nan"), "read watermark is not an integer (float)"),
        (float("inf"), "read watermark is not an integer (float)"),
        (10**30, "read watermark is past year 9999"),
        ("1" * 30, "read watermark is past year 9999"),
        (True, "read watermark is not an integer (bool)"),
    ],
)
def test_watermark_that_cannot_be_stored_makes_the_receipt_unusable(watermark: object, reason: str) -> None:
    # Given a read receipt with a watermark no timestamp can hold
    item = from_contact(read={"watermark": watermark})

    # When the body is parsed
    event = parse_one(item)

    # Then the receipt is unusable, with the reason
    assert event == UnusableEvent(PAGE_ID, "read", reason, item)


def test_watermark_of_1e30_decoded_from_json_is_unusable() -> None:
    # Given the wire form: 1e30 and NaN as json.loads decodes them
    raw = json.loads(
        '{"object": "page", "entry": [{"id": "106402305263532", "time": 1718023456789, "messaging": ['
        '{"sender": {"id": "6871309196217453"}, "recipient": {"id": "106402305263532"}, "read": {"watermark": 1e30}},'
        '{"sender": {"id": "6871309196217453"}, "recipient": {"id": "106402305263532"}, "delivery": {"watermark": NaN}}'
        "]}]}"
    )

    # When it is parsed
    events = parse_webhook_body(raw)

    # Then both receipts are unusable
    assert [(type(e), e.kind) for e in events] == [(UnusableEvent, "read"), (UnusableEvent, "delivery")]


@pytest.mark.parametrize(
    "item, reason",
    [
        (from_contact(message={"mid": "m" * 256, "text": "hi"}), "mid longer than 255 characters"),
        (from_contact(psid="1" * 65, message={"mid": "m_1", "text": "hi"}), "sender id longer than 64 characters"),
        (from_contact(postback={"mid": "m" * 256, "payload": "P"}), "mid longer than 255 characters"),
        (from_contact(reaction={"action": "react", "mid": "m" * 256}), "mid longer than 255 characters"),
        (from_contact(psid="1" * 65, read={"watermark": 1}), "sender id longer than 64 characters"),
        (
            {"sender": {"id": PAGE_ID}, "recipient": {"id": "2" * 65}, "message": {"is_echo": True, "mid": "m_e"}},
            "recipient id longer than 64 characters",
        ),
    ],
)
def test_id_longer_than_its_column_makes_the_event_unusable(item: dict[str, Any], reason: str) -> None:
    # Given an event whose id is longer than the column that stores it (models: Message, Contact)
    # When the body is parsed
    event = parse_one(item)

    # Then it is unusable, with the reason
    assert isinstance(event, UnusableEvent) and event.reason == reason


def test_mid_of_exactly_255_characters_is_stored() -> None:
    # Given a mid exactly as long as its column
    item = from_contact(message={"mid": "m" * 255, "text": "hi"})

    # When the body is parsed
    # Then it is a message
    assert isinstance(parse_one(item), InboundMessage)


def test_page_id_longer_than_its_column_makes_the_entry_unusable() -> None:
    # Given an entry for a page id that no channel can have
    bad = entry(from_contact(message={"mid": "m_1", "text": "hi"}), page_id="1" * 65)

    # When the body is parsed
    (event,) = parse_webhook_body(body(bad))

    # Then the entry is unusable, attributed to no page
    assert event == UnusableEvent(None, "entry", "page id longer than 64 characters", bad)


def test_one_unusable_event_leaves_the_rest_of_the_request_alone() -> None:
    # Given a request where one event of three cannot be stored
    good_first = from_contact(message={"mid": "m_1", "text": "one"})
    bad = from_contact(timestamp=10**20, message={"mid": "m_2", "text": "two"})
    good_last = from_contact(read={"watermark": "1718023450000"})

    # When the body is parsed
    other_page = entry(from_contact(message={"mid": "m_3", "text": "three"}), page_id="211958362218471")
    events = parse_webhook_body(body(entry(good_first, bad, good_last), other_page))

    # Then only that event is unusable, in its place
    assert [type(e) for e in events] == [InboundMessage, UnusableEvent, ReceiptWatermark, InboundMessage]
    assert len({event_key(e) for e in events}) == 4


# -- Echoes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", [{"id": PAGE_ID}, {"id": "999"}, None])
def test_the_sender_of_an_echo_is_the_page(sender: dict[str, str] | None) -> None:
    # Given an echo, whatever its sender says
    item: dict[str, Any] = {
        "recipient": {"id": PSID},
        "timestamp": TIMESTAMP,
        "message": {"is_echo": True, "mid": "m_e"},
    }
    if sender is not None:
        item["sender"] = sender

    # When the body is parsed
    event = parse_one(item)

    # Then the page (the channel) is its sender, and the recipient its contact
    assert isinstance(event, InboundMessage)
    assert (event.sender_id, event.contact_id, event.from_contact) == (PAGE_ID, PSID, False)


# -- Nothing dropped silently -------------------------------------------------------------------------------


def test_every_ignored_or_unusable_event_has_log_fields_without_raw() -> None:
    # Given a request mixing events this module ignores and one it cannot store
    items = [
        from_contact(account_linking={"status": "linked", "authorization_code": "secret-code"}),
        from_contact(message={"text": "no mid"}),
        from_contact(timestamp=1e30, message={"mid": "m_1"}),
    ]

    # When the body is parsed under standby
    events = parse_webhook_body(body(entry(*items, key="standby")))

    # Then each gives one event whose log fields say what and why, never the raw item
    assert [type(e) for e in events] == [IgnoredEvent, IgnoredEvent, UnusableEvent]
    for event in events:
        assert isinstance(event, IgnoredEvent | UnusableEvent)
        fields = event.log_fields()
        assert set(fields) == {"page_id", "platform", "kind", "reason", "standby"}
        assert fields["standby"] is True and fields["page_id"] == PAGE_ID
        assert "secret-code" not in repr(event)
