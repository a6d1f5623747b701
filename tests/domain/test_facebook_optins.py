"""Opt-ins: Marketing Messages (notification_messages) and the plugins' plain opt-ins.

Payload shapes: see the builders in tests/domain/facebook_payloads.py, each citing its page of Meta's reference
or the recorded payload it follows.
"""

from __future__ import annotations

import pytest

from airy_actors.facebook_events import (
    IgnoredEvent,
    OptinReceived,
    UnusableEvent,
    event_key,
    parse_webhook_body,
)
from tests.domain.facebook_payloads import (
    EXPIRY,
    PAGE_ID,
    PSID,
    TIMESTAMP,
    TOKEN,
    body,
    checkbox_optin,
    entry,
    from_contact,
    notification_optin,
    notification_optin_as_documented,
    parse_one,
    send_to_messenger_optin,
)


def test_marketing_messages_optin_with_expiry_is_an_active_token() -> None:
    # Given a contact accepting daily Marketing Messages, as courier recorded it
    item = notification_optin()

    # When the body is parsed
    event = parse_one(item)

    # Then the token is active, with its title, frequency, expiry and payload
    assert event == OptinReceived(
        page_id=PAGE_ID,
        contact_id=PSID,
        timestamp_ms=TIMESTAMP,
        type="notification_messages",
        status="active",
        token=TOKEN,
        title="Bird Facts",
        frequency="DAILY",
        timezone="UTC",
        expires_at_ms=EXPIRY,
        token_status="NOT_REFRESHED",
        payload="BIRD_FACTS",
        ref=None,
        user_ref=None,
        message_request=None,
    )


def test_marketing_messages_optin_without_expiry_has_no_expiry() -> None:
    # Given an opt-in without token_expiry_timestamp
    item = notification_optin(token_expiry_timestamp=None)

    # When the body is parsed
    event = parse_one(item)

    # Then it expires at no known time
    assert isinstance(event, OptinReceived)
    assert event.expires_at_ms is None and event.status == "active"


def test_marketing_messages_optin_in_the_documented_all_strings_shape() -> None:
    # Given the reference's shape: timestamp and expiry as strings of digits, no frequency (gone in v16)
    item = notification_optin_as_documented()

    # When the body is parsed
    event = parse_one(item)

    # Then the times are integers and the missing frequency is None
    assert isinstance(event, OptinReceived)
    assert (event.timestamp_ms, event.expires_at_ms) == (TIMESTAMP, EXPIRY)
    assert (event.frequency, event.timezone, event.token_status) == (None, "Europe/Berlin", "REFRESHED")


@pytest.mark.parametrize(
    "status, expected",
    [
        ("STOP NOTIFICATIONS", "stopped"),  # as Meta's reference writes it
        ("STOP_NOTIFICATIONS", "stopped"),  # as courier's recorded opt-out writes it
        ("RESUME NOTIFICATIONS", "resumed"),
        ("RESUME_NOTIFICATIONS", "resumed"),
    ],
)
def test_stop_and_resume_change_the_status(status: str, expected: str) -> None:
    # Given a contact stopping or resuming Marketing Messages
    item = notification_optin_as_documented(status=status)

    # When the body is parsed
    event = parse_one(item)

    # Then the same token carries the new status
    assert isinstance(event, OptinReceived)
    assert (event.token, event.status) == (TOKEN, expected)


def test_unknown_notification_status_is_ignored_rather_than_guessed() -> None:
    # Given a status Facebook doesn't document
    item = notification_optin(notification_messages_status="PAUSE NOTIFICATIONS")

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored with the reason
    assert event == IgnoredEvent(
        PAGE_ID, "unsupported notification_messages_status: PAUSE NOTIFICATIONS", item, kind="optin"
    )


def test_marketing_messages_optin_without_token_is_ignored() -> None:
    # Given an opt-in that gives no token
    item = notification_optin(notification_messages_token=None)

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored: there is nothing to send to
    assert event == IgnoredEvent(PAGE_ID, "notification_messages optin without token", item, kind="optin")


def test_marketing_messages_token_written_as_a_number_is_kept_as_its_digits() -> None:
    # Given a token sent as a JSON number
    item = notification_optin(notification_messages_token=int(TOKEN))

    # When the body is parsed
    event = parse_one(item)

    # Then the token is the same string of digits
    assert isinstance(event, OptinReceived) and event.token == TOKEN


def test_marketing_messages_token_expiring_past_year_9999_is_unusable() -> None:
    # Given an expiry that no timestamp can show
    item = notification_optin(token_expiry_timestamp=10**17)

    # When the body is parsed
    event = parse_one(item)

    # Then the opt-in is unusable, with the reason
    assert isinstance(event, UnusableEvent)
    assert (event.kind, event.reason) == ("optin", "token_expiry_timestamp is past year 9999")


def test_the_token_stays_out_of_repr_keys_and_log_fields() -> None:
    # Given an opt-in, and one that is ignored for its status
    optin = parse_one(notification_optin())
    ignored = parse_one(notification_optin(notification_messages_status="?"))

    # Then neither the repr, the key nor the log fields show the token
    assert isinstance(ignored, IgnoredEvent)
    for text in (repr(optin), event_key(optin), repr(ignored), str(ignored.log_fields())):
        assert TOKEN not in text


def test_send_to_messenger_optin_is_a_plain_optin_with_its_ref() -> None:
    # Given a tap on the Send to Messenger plugin
    item = send_to_messenger_optin()

    # When the body is parsed
    event = parse_one(item)

    # Then it is a plain opt-in of the contact, with the plugin's data-ref
    assert event == OptinReceived(
        page_id=PAGE_ID,
        contact_id=PSID,
        timestamp_ms=TIMESTAMP,
        type=None,
        status=None,
        token=None,
        title=None,
        frequency=None,
        timezone=None,
        expires_at_ms=None,
        token_status=None,
        payload=None,
        ref="PASS_THROUGH_PARAM",
        user_ref=None,
        message_request=None,
    )


def test_checkbox_optin_has_a_user_ref_and_no_contact() -> None:
    # Given the checkbox plugin's opt-in, which comes without sender
    item = checkbox_optin()

    # When the body is parsed
    event = parse_one(item)

    # Then the person is named by user_ref only
    assert isinstance(event, OptinReceived)
    assert (event.contact_id, event.user_ref, event.ref) == (None, "UNIQUE_REF_PARAM_123", "PASS_THROUGH_PARAM")
    assert event_key(event).startswith("optin:user_ref:UNIQUE_REF_PARAM_123:")


def test_accepted_message_request_is_a_plain_optin() -> None:
    # Given a message request (customer matching) accepted by the person
    item = from_contact(optin={"message_request": "accept"})

    # When the body is parsed
    event = parse_one(item)

    # Then the acceptance is kept
    assert isinstance(event, OptinReceived)
    assert (event.type, event.message_request, event.contact_id) == (None, "accept", PSID)


def test_optin_naming_nobody_is_ignored() -> None:
    # Given an opt-in with neither sender nor user_ref
    item = {"recipient": {"id": PAGE_ID}, "timestamp": TIMESTAMP, "optin": {"ref": "x"}}

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored
    assert event == IgnoredEvent(PAGE_ID, "optin without sender nor user_ref", item, kind="optin")


def test_one_time_notification_optin_is_ignored_by_type() -> None:
    # Given a retired one-time notification opt-in
    item = from_contact(optin={"type": "one_time_notif_req", "payload": "P", "one_time_notif_token": "T"})

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored, naming the type
    assert event == IgnoredEvent(PAGE_ID, "unsupported optin type: one_time_notif_req", item, kind="optin")


def test_optin_under_standby_is_flagged() -> None:
    # Given an opt-in seen by an app that doesn't own the thread
    (event,) = parse_webhook_body(body(entry(notification_optin(), key="standby")))

    # Then it is the same opt-in, flagged
    assert isinstance(event, OptinReceived) and event.standby and event.token == TOKEN
