"""Unit tests for airy_actors.facebook_events, using payloads in Facebook's shapes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airy_actors.facebook_events import (
    IgnoredEvent,
    InboundMessage,
    MessageEdited,
    OptinReceived,
    ReactionChanged,
    ReceiptWatermark,
    ReferralReceived,
    ThreadControlChanged,
    UnusableEvent,
    event_key,
    parse_webhook_body,
)
from tests.domain.facebook_payloads import (
    APP_ID,
    ENTRY_TIME,
    OTHER_PSID,
    PAGE_ID,
    PSID,
    TIMESTAMP,
    body,
    entry,
    from_contact,
    parse_one,
)

# -- Messages from contacts -------------------------------------------------------------------------


def test_text_message_from_contact_is_an_inbound_message_from_contact() -> None:
    # Given a text message sent by a contact
    item = from_contact(message={"mid": "m_text_1", "text": "Hello, is the shop open today?"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is a message from the contact, keeping the whole item as content
    assert event == InboundMessage(
        page_id=PAGE_ID,
        contact_id=PSID,
        source_message_id="m_text_1",
        content=item,
        from_contact=True,
        sender_id=PSID,
        sent_at_ms=TIMESTAMP,
        is_echo=False,
        app_id=None,
        postback=None,
    )


def test_image_attachment_is_kept_verbatim_in_content() -> None:
    # Given a message carrying an image attachment and no text
    item = from_contact(
        message={
            "mid": "m_image_1",
            "attachments": [{"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/a.jpg"}}],
        }
    )

    # When the body is parsed
    event = parse_one(item)

    # Then the attachment is reachable through the content
    assert isinstance(event, InboundMessage)
    assert event.source_message_id == "m_image_1"
    assert event.content["message"]["attachments"][0]["payload"]["url"].endswith("/a.jpg")
    assert event.from_contact


def test_quick_reply_is_a_message_carrying_its_payload_in_content() -> None:
    # Given a tap on a quick reply
    item = from_contact(message={"mid": "m_qr_1", "text": "Red", "quick_reply": {"payload": "COLOR_RED"}})

    # When the body is parsed
    event = parse_one(item)

    # Then it is an ordinary message, not a postback
    assert isinstance(event, InboundMessage)
    assert event.postback is None
    assert event.content["message"]["quick_reply"] == {"payload": "COLOR_RED"}


def test_sticker_is_a_message_from_contact() -> None:
    # Given a "like" sticker, which Facebook sends as an image attachment plus sticker_id
    item = from_contact(
        message={
            "mid": "m_sticker_1",
            "sticker_id": 369239263222822,
            "attachments": [
                {
                    "type": "image",
                    "payload": {
                        "url": "https://scontent.xx.fbcdn.net/t39.1997-6/s.png",
                        "sticker_id": 369239263222822,
                    },
                }
            ],
        }
    )

    # When the body is parsed
    event = parse_one(item)

    # Then it is a message whose content still carries the sticker id
    assert isinstance(event, InboundMessage)
    assert event.source_message_id == "m_sticker_1"
    assert event.content["message"]["sticker_id"] == 369239263222822


def test_message_replying_to_another_is_a_message_from_contact() -> None:
    # Given a reply to an earlier message
    item = from_contact(message={"mid": "m_reply_1", "text": "yes", "reply_to": {"mid": "m_text_1"}})

    # When the body is parsed
    event = parse_one(item)

    # Then it is a message, with the reply target left in content
    assert isinstance(event, InboundMessage)
    assert event.content["message"]["reply_to"] == {"mid": "m_text_1"}


def test_missing_timestamp_falls_back_to_entry_time() -> None:
    # Given a message without its own timestamp
    item = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "message": {"mid": "m_1", "text": "hi"}}

    # When the body is parsed
    event = parse_one(item)

    # Then the entry's time is used
    assert isinstance(event, InboundMessage)
    assert event.sent_at_ms == ENTRY_TIME


# -- Postbacks --------------------------------------------------------------------------------------


def test_postback_with_mid_uses_facebooks_mid() -> None:
    # Given a button tap that Facebook gave a mid
    item = from_contact(postback={"title": "Get Started", "payload": "GET_STARTED", "mid": "m_postback_1"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is a message from the contact with the postback's payload and title
    assert isinstance(event, InboundMessage)
    assert event.source_message_id == "m_postback_1"
    assert event.postback == {"payload": "GET_STARTED", "title": "Get Started"}
    assert event.from_contact and not event.is_echo
    assert event.contact_id == event.sender_id == PSID


def test_postback_without_mid_gets_a_deterministic_synthetic_id() -> None:
    # Given a button tap without mid
    item = from_contact(postback={"title": "Talk to a human", "payload": "HANDOVER"})
    expected = hashlib.sha256(f"{PSID}|{TIMESTAMP}|HANDOVER".encode()).hexdigest()[:32]

    # When the same body is parsed twice (as on a Facebook retry)
    first = parse_one(item)
    second = parse_one(json.loads(json.dumps(item)))

    # Then both get the same synthetic id, derived from psid, timestamp and payload
    assert isinstance(first, InboundMessage) and isinstance(second, InboundMessage)
    assert first.source_message_id == f"postback:{expected}"
    assert second.source_message_id == first.source_message_id


def test_postbacks_without_mid_with_different_payloads_get_different_ids() -> None:
    # Given two taps at the same instant on different buttons
    yes = from_contact(postback={"title": "Yes", "payload": "YES"})
    no = from_contact(postback={"title": "No", "payload": "NO"})

    # When both are parsed
    events = parse_webhook_body(body(entry(yes, no)))

    # Then they don't collide
    first, second = (event_key(e) for e in events)
    assert first != second


# -- Echoes -----------------------------------------------------------------------------------------


def test_echo_from_our_app_is_a_message_not_from_contact() -> None:
    # Given the echo of a message our app sent to the contact
    item = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": TIMESTAMP,
        "message": {
            "is_echo": True,
            "app_id": APP_ID,
            "metadata": "airy:outbound:42",
            "mid": "m_echo_1",
            "text": "We open at 9am.",
        },
    }

    # When the body is parsed
    event = parse_one(item)

    # Then the contact is the recipient, the page is the sender, and app_id is a string
    assert event == InboundMessage(
        page_id=PAGE_ID,
        contact_id=PSID,
        source_message_id="m_echo_1",
        content=item,
        from_contact=False,
        sender_id=PAGE_ID,
        sent_at_ms=TIMESTAMP,
        is_echo=True,
        app_id=str(APP_ID),
        postback=None,
    )


def test_echo_from_page_inbox_is_a_message_not_from_contact() -> None:
    # Given the echo of a reply a human typed in the Page inbox: no app_id
    item = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": TIMESTAMP,
        "message": {"is_echo": True, "mid": "m_echo_2", "text": "Typed by hand"},
    }

    # When the body is parsed
    event = parse_one(item)

    # Then it is an echo without app id
    assert isinstance(event, InboundMessage)
    assert event.is_echo and not event.from_contact
    assert event.app_id is None
    assert event.contact_id == PSID
    assert event.sender_id == PAGE_ID


def test_echo_without_recipient_is_ignored() -> None:
    # Given an echo that doesn't say who it was sent to
    item = {
        "sender": {"id": PAGE_ID},
        "timestamp": TIMESTAMP,
        "message": {"is_echo": True, "mid": "m_echo_3"},
    }

    # When the body is parsed
    event = parse_one(item)

    # Then there's no contact to attach it to
    assert event == IgnoredEvent(PAGE_ID, "missing recipient", item, kind="message")


# -- Reactions --------------------------------------------------------------------------------------


def test_reaction_decodes_json_escaped_emoji() -> None:
    # Given a reaction, with the emoji escaped as Facebook sends it on the wire
    raw = """
        {"object": "page", "entry": [{"id": "106402305263532", "time": 1718023456789, "messaging": [{
            "sender": {"id": "6871309196217453"},
            "recipient": {"id": "106402305263532"},
            "timestamp": 1718023455123,
            "reaction": {"reaction": "love", "emoji": "\\u2764\\ufe0f", "action": "react", "mid": "m_text_1"}
        }]}]}
    """

    # When the decoded body is parsed
    (event,) = parse_webhook_body(json.loads(raw))

    # Then the emoji is the decoded unicode heart
    assert event == ReactionChanged(
        page_id=PAGE_ID,
        contact_id=PSID,
        source_message_id="m_text_1",
        action="react",
        emoji="❤️",
        reaction="love",
        sent_at_ms=TIMESTAMP,
    )


def test_unreact_without_emoji_has_no_emoji_nor_reaction() -> None:
    # Given a withdrawn reaction, which usually names nothing but the target
    item = from_contact(reaction={"action": "unreact", "mid": "m_text_1"})

    # When the body is parsed
    event = parse_one(item)

    # Then emoji and reaction are None
    assert event == ReactionChanged(PAGE_ID, PSID, "m_text_1", "unreact", None, None, TIMESTAMP)


def test_reaction_with_unknown_action_is_ignored() -> None:
    # Given a reaction with an action Facebook doesn't document
    item = from_contact(reaction={"action": "boost", "mid": "m_text_1"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored rather than guessed at
    assert isinstance(event, IgnoredEvent)
    assert (event.kind, event.reason) == ("reaction", "unsupported reaction action")


# -- Edits and receipts -----------------------------------------------------------------------------


def test_message_edit_becomes_message_edited() -> None:
    # Given a contact editing a message for the second time
    item = from_contact(message_edit={"mid": "m_text_1", "text": "Hello, is the shop open tomorrow?", "num_edit": 2})

    # When the body is parsed
    event = parse_one(item)

    # Then it carries the new text and edit count
    assert event == MessageEdited(
        page_id=PAGE_ID,
        contact_id=PSID,
        source_message_id="m_text_1",
        text="Hello, is the shop open tomorrow?",
        num_edit=2,
        edited_at_ms=TIMESTAMP,
    )


def test_delivery_with_mids_is_a_delivered_watermark() -> None:
    # Given a delivery receipt, which Facebook sends without timestamp
    item = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "delivery": {"mids": ["m_echo_1", "m_echo_2"], "watermark": 1718023450000},
    }

    # When the body is parsed
    event = parse_one(item)

    # Then it is a delivered watermark naming the messages
    assert event == ReceiptWatermark(PAGE_ID, PSID, "delivered", 1718023450000, ("m_echo_1", "m_echo_2"))


def test_read_is_a_read_watermark_without_mids() -> None:
    # Given a read receipt
    item = from_contact(read={"watermark": 1718023451000})

    # When the body is parsed
    event = parse_one(item)

    # Then it is a read watermark
    assert event == ReceiptWatermark(PAGE_ID, PSID, "read", 1718023451000, ())


# -- Batches and envelopes --------------------------------------------------------------------------


def test_standby_events_are_processed_like_messaging() -> None:
    # Given a message received while another app owns the thread
    item = from_contact(message={"mid": "m_standby_1", "text": "still there?"})

    # When the body is parsed
    events = parse_webhook_body(body(entry(item, key="standby")))

    # Then it is parsed exactly as under messaging, flagged as standby
    (event,) = events
    assert isinstance(event, InboundMessage) and event.standby
    assert parse_webhook_body(body(entry(item))) == [dataclasses.replace(event, standby=False)]


def test_batch_keeps_entry_and_event_order() -> None:
    # Given two entries for two pages, each with several events
    other_page = "211958362218471"
    first = entry(
        from_contact(message={"mid": "m_a1", "text": "one"}),
        from_contact(read={"watermark": 1}),
        from_contact(reaction={"action": "react", "emoji": "👍", "reaction": "like", "mid": "m_a1"}),
    )
    second = entry(
        from_contact(psid=OTHER_PSID, message={"mid": "m_b1", "text": "two"}),
        from_contact(psid=OTHER_PSID, optin={"ref": "landing"}),
        from_contact(psid=OTHER_PSID, account_linking={"status": "unlinked"}),
        page_id=other_page,
    )

    # When the body is parsed
    events = parse_webhook_body(body(first, second))

    # Then events come out flat, in entry order then event order, each with its entry's page
    assert [type(e) for e in events] == [
        InboundMessage,
        ReceiptWatermark,
        ReactionChanged,
        InboundMessage,
        OptinReceived,
        IgnoredEvent,
    ]
    assert [e.page_id for e in events] == [PAGE_ID] * 3 + [other_page] * 3
    assert [event_key(e) for e in events[:2]] == ["message:m_a1", f"receipt:read:{PSID}:1"]


def test_entry_with_messaging_and_standby_yields_messaging_first() -> None:
    # Given an entry holding both lists
    item = {
        "id": PAGE_ID,
        "time": ENTRY_TIME,
        "standby": [from_contact(message={"mid": "m_s", "text": "s"})],
        "messaging": [from_contact(message={"mid": "m_m", "text": "m"})],
    }

    # When the body is parsed
    events = parse_webhook_body(body(item))

    # Then messaging comes before standby
    assert [event_key(e) for e in events] == ["message:m_m", "message:m_s"]


@pytest.mark.parametrize(
    "kind, payload",
    [
        ("account_linking", {"status": "linked", "authorization_code": "code"}),
        ("policy_enforcement", {"action": "block", "reason": "spam"}),
        ("app_roles", {"123456789": ["primary_receiver"]}),
        ("messaging_feedback", {"feedback_screens": [{"screen_id": 0, "questions": {}}]}),
    ],
)
def test_unsupported_event_kinds_are_ignored_with_their_name(kind: str, payload: dict[str, Any]) -> None:
    # Given an event kind this connector doesn't handle
    item = from_contact(**{kind: payload})

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored, naming the kind, with the raw item kept
    assert event == IgnoredEvent(PAGE_ID, f"unsupported event: {kind}", item, kind=kind)


def test_an_object_of_another_platform_is_ignored_whole() -> None:
    # Given a body of a platform the service does not serve (Instagram bodies have a parser of their own)
    other = {"object": "whatsapp_business_account", "entry": [entry(from_contact(message={"mid": "m_x", "text": "x"}))]}

    # When it is parsed
    events = parse_webhook_body(other)

    # Then a single ignored event holds the whole body
    assert events == [IgnoredEvent(None, "object is neither page nor instagram", other, kind="body")]


@pytest.mark.parametrize("entries", [None, "oops", {"id": PAGE_ID}, 42])
def test_missing_or_non_list_entry_is_ignored(entries: object) -> None:
    # Given a page body whose entry is not a list
    raw = {"object": "page", "entry": entries}

    # When it is parsed
    events = parse_webhook_body(raw)

    # Then it is ignored whole
    assert events == [IgnoredEvent(None, "missing entry list", raw, kind="body")]


def test_entries_that_are_not_objects_are_ignored_one_by_one() -> None:
    # Given junk between real entries
    good = entry(from_contact(message={"mid": "m_ok", "text": "ok"}))

    # When the body is parsed
    events = parse_webhook_body(body(None, "x", good, 7))  # type: ignore[arg-type]

    # Then the real entry produces its event, and each piece of junk an ignored event in its place
    junk = [IgnoredEvent(None, "entry is not an object", raw, kind="entry") for raw in (None, "x", 7)]
    assert events[:2] == junk[:2] and events[3:] == junk[2:]
    assert event_key(events[2]) == "message:m_ok"


@pytest.mark.parametrize(
    "item, kind, reason",
    [
        (from_contact(message={"text": "no mid"}), "message", "message without mid"),
        (
            {"recipient": {"id": PAGE_ID}, "timestamp": TIMESTAMP, "message": {"mid": "m_1"}},
            "message",
            "missing sender",
        ),
        (
            {"sender": {"user_ref": "guest"}, "timestamp": TIMESTAMP, "message": {"mid": "m_1"}},
            "message",
            "missing sender",
        ),
        (from_contact(message="hello"), "message", "message is not an object"),
        (from_contact(read={}), "read", "read without watermark"),
        (from_contact(delivery={"mids": "m_1", "watermark": 1}), "delivery", "delivery with invalid mids"),
        (from_contact(message_edit={"mid": "m_1", "num_edit": 1}), "message_edit", "message_edit without text"),
        (from_contact(reaction={"action": "react"}), "reaction", "reaction without mid"),
        ({"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}}, "unknown", "unknown event"),
    ],
)
def test_malformed_events_are_ignored_with_a_reason(item: dict[str, Any], kind: str, reason: str) -> None:
    # Given a malformed messaging item
    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored with its kind, the reason and the raw item
    assert event == IgnoredEvent(PAGE_ID, reason, item, kind=kind)


@pytest.mark.parametrize(
    "item, reason",
    [
        (from_contact(timestamp=1718023455.5, message={"mid": "m_1"}), "timestamp is not an integer (float)"),
        (from_contact(timestamp=True, message={"mid": "m_1"}), "timestamp is not an integer (bool)"),
        (from_contact(read={"watermark": "soon"}), "read watermark is not an integer"),
    ],
)
def test_events_with_values_that_cannot_be_stored_are_unusable(item: dict[str, Any], reason: str) -> None:
    # Given an event of a handled kind whose value cannot be stored
    # When the body is parsed
    event = parse_one(item)

    # Then it is unusable, with the reason
    assert isinstance(event, UnusableEvent)
    assert (event.page_id, event.reason, event.raw) == (PAGE_ID, reason, item)


def test_non_object_messaging_item_is_ignored() -> None:
    # Given a messaging list holding a string
    raw = body({"id": PAGE_ID, "time": ENTRY_TIME, "messaging": ["junk"]})

    # When the body is parsed
    events = parse_webhook_body(raw)

    # Then it is ignored, attributed to the entry's page
    assert events == [IgnoredEvent(PAGE_ID, "event is not an object", "junk", kind="event")]


def test_entry_without_page_id_is_ignored() -> None:
    # Given an entry that doesn't say which page it is for
    bad = {"time": ENTRY_TIME, "messaging": [from_contact(message={"mid": "m_1"})]}

    # When the body is parsed
    events = parse_webhook_body(body(bad))

    # Then the entry is ignored as a whole
    assert events == [IgnoredEvent(None, "entry without page id", bad, kind="entry")]


# -- Keys -------------------------------------------------------------------------------------------


def test_event_keys_follow_the_documented_formats() -> None:
    # Given one event of each kind
    reaction = ReactionChanged(PAGE_ID, PSID, "m_1", "react", "❤️", "love", 5)
    edit = MessageEdited(PAGE_ID, PSID, "m_1", "new", 3, 6)
    receipt = ReceiptWatermark(PAGE_ID, PSID, "delivered", 7, ())

    # When keys are computed
    # Then they identify the event
    assert event_key(reaction) == f"reaction:m_1:{PSID}:react:5"
    assert event_key(edit) == "edit:m_1:3"
    assert event_key(receipt) == f"receipt:delivered:{PSID}:7"


def test_retried_body_yields_the_same_keys() -> None:
    # Given a body Facebook delivers twice, the second time re-serialised
    raw = body(
        entry(
            from_contact(message={"mid": "m_1", "text": "hi"}),
            from_contact(postback={"title": "Go", "payload": {"step": 1, "flow": "a"}}),
            from_contact(optin={"ref": "x"}),
        )
    )
    retried = json.loads(json.dumps(raw, sort_keys=True))

    # When both are parsed
    # Then the keys match one for one
    assert [event_key(e) for e in parse_webhook_body(raw)] == [event_key(e) for e in parse_webhook_body(retried)]


# -- Robustness -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=30,
)

# Values near Facebook's shapes reach deeper branches than uniformly random JSON;
# each strategy is mostly well-formed with a chance of junk at every level.


def mostly(*good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Draw from the `good` strategies nine times out of ten, else arbitrary JSON."""
    # one_of picks its branches evenly, so weight the pick explicitly.
    return st.integers(0, 9).flatmap(lambda n: st.one_of(*good) if n else json_values)


ids = mostly(st.sampled_from([PSID, PAGE_ID]), st.integers(), st.text(max_size=3), st.just("9" * 300))
millis = mostly(
    st.integers(min_value=0, max_value=2**42),
    st.integers(min_value=0, max_value=2**42).map(str),
    st.sampled_from([1e30, float("nan"), -1, 253_402_300_800_000, "9" * 5000]),
)
party = mostly(st.fixed_dictionaries({"id": ids}))
event_payload = st.fixed_dictionaries(
    {},
    optional={
        "mid": mostly(st.text(min_size=1, max_size=5)),
        "text": mostly(st.text(max_size=5)),
        "is_echo": mostly(st.booleans()),
        "app_id": ids,
        "payload": json_values,
        "title": json_values,
        "action": mostly(st.sampled_from(["react", "unreact"])),
        "emoji": mostly(st.just("\u2764\ufe0f")),
        "reaction": json_values,
        "num_edit": mostly(st.integers(), st.text(max_size=3)),
        "watermark": millis,
        "mids": mostly(st.lists(st.text(max_size=3), max_size=3)),
        "referral": mostly(
            st.fixed_dictionaries(
                {"source": mostly(st.sampled_from(["SHORTLINK", "ADS", "CUSTOMER_CHAT_PLUGIN"]))},
                optional={"ref": json_values, "ad_id": ids, "ads_context_data": json_values, "type": json_values},
            )
        ),
        "type": mostly(st.just("notification_messages")),
        "notification_messages_token": mostly(st.text(min_size=1, max_size=5)),
        "notification_messages_status": mostly(st.sampled_from(["STOP NOTIFICATIONS", "RESUME_NOTIFICATIONS"])),
        "token_expiry_timestamp": millis,
        "user_ref": ids,
        "new_owner_app_id": ids,
        "previous_owner_app_id": ids,
        "requested_owner_app_id": ids,
        "source": mostly(st.just("ADS")),
    },
)
event_kinds = st.sampled_from(
    [
        "message",
        "postback",
        "reaction",
        "message_edit",
        "delivery",
        "read",
        "optin",
        "referral",
        "pass_thread_control",
        "take_thread_control",
        "request_thread_control",
    ]
)
messaging_items = mostly(
    st.builds(
        lambda envelope, kind, payload: {**envelope, kind: payload},
        st.fixed_dictionaries({}, optional={"sender": party, "recipient": party, "timestamp": millis}),
        event_kinds,
        mostly(event_payload),
    ),
)
entries = mostly(
    st.fixed_dictionaries(
        {"id": ids},
        optional={
            "time": millis,
            "messaging": mostly(st.lists(messaging_items, max_size=4)),
            "standby": mostly(st.lists(messaging_items, max_size=4)),
        },
    ),
)
page_bodies = st.fixed_dictionaries(
    {
        "object": mostly(st.just("page")),
        "entry": mostly(st.lists(entries, max_size=3)),
    }
)


@settings(max_examples=300)
@given(st.one_of(json_values, page_bodies), st.none() | st.integers(min_value=0, max_value=2**42))
def test_any_json_body_yields_a_list_and_never_raises(raw: object, received_at_ms: int | None) -> None:
    # Given any JSON value, random or shaped like a webhook body
    # When it is parsed
    events = parse_webhook_body(raw, received_at_ms=received_at_ms)

    # Then a list of events comes out, each with a key
    assert isinstance(events, list)
    for event in events:
        assert isinstance(
            event,
            InboundMessage
            | ReactionChanged
            | MessageEdited
            | ReceiptWatermark
            | ReferralReceived
            | OptinReceived
            | ThreadControlChanged
            | UnusableEvent
            | IgnoredEvent,
        )
        assert isinstance(event_key(event), str)
