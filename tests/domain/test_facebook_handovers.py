"""Handover protocol: pass, take and request thread control, under messaging and under standby.

Payload shapes: see the builders in tests/domain/facebook_payloads.py ("messaging_handovers Webhook Event
Reference").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airy_actors.facebook_events import (
    IgnoredEvent,
    ThreadControlChanged,
    UnusableEvent,
    event_key,
    parse_webhook_body,
)
from tests.domain.facebook_payloads import (
    BOT_APP_ID,
    PAGE_ID,
    PAGE_INBOX_APP_ID,
    PSID,
    TIMESTAMP,
    body,
    entry,
    parse_one,
    pass_thread_control,
    request_thread_control,
    take_thread_control,
)


def test_pass_thread_control_names_the_new_and_previous_owner() -> None:
    # Given the bot passing the thread to the Page inbox
    item = pass_thread_control()

    # When the body is parsed
    event = parse_one(item)

    # Then the thread moved to the inbox
    assert event == ThreadControlChanged(
        page_id=PAGE_ID,
        contact_id=PSID,
        kind="pass",
        new_owner_app_id=PAGE_INBOX_APP_ID,
        previous_owner_app_id=BOT_APP_ID,
        requested_owner_app_id=None,
        metadata="Additional content that the caller wants to set",
        timestamp_ms=TIMESTAMP,
    )
    assert event_key(event) == f"thread_control:pass:{PSID}:{TIMESTAMP}"


def test_pass_from_an_idle_thread_has_no_previous_owner() -> None:
    # Given a pass whose previous owner is null (the thread was idle), as the reference allows
    item = pass_thread_control(previous_owner_app_id=None)

    # When the body is parsed
    event = parse_one(item)

    # Then there is no previous owner
    assert isinstance(event, ThreadControlChanged)
    assert (event.previous_owner_app_id, event.new_owner_app_id) == (None, PAGE_INBOX_APP_ID)


def test_take_thread_control_names_who_lost_the_thread() -> None:
    # Given the Page inbox's thread taken by the bot
    item = take_thread_control()

    # When the body is parsed
    event = parse_one(item)

    # Then it is a take, from the inbox to the bot
    assert isinstance(event, ThreadControlChanged)
    assert (event.kind, event.previous_owner_app_id, event.new_owner_app_id) == (
        "take",
        PAGE_INBOX_APP_ID,
        BOT_APP_ID,
    )


def test_take_without_new_owner_as_in_the_older_reference() -> None:
    # Given the older reference's take, which names only the previous owner
    item = take_thread_control()
    del item["take_thread_control"]["new_owner_app_id"]

    # When the body is parsed
    event = parse_one(item)

    # Then the new owner is unknown, not guessed
    assert isinstance(event, ThreadControlChanged)
    assert (event.kind, event.new_owner_app_id, event.previous_owner_app_id) == ("take", None, PAGE_INBOX_APP_ID)


def test_request_thread_control_names_the_requesting_app_as_a_string() -> None:
    # Given an app asking for the thread, its id written as a number as in the reference
    item = request_thread_control()

    # When the body is parsed
    event = parse_one(item)

    # Then it is a request from that app; nothing moved
    assert isinstance(event, ThreadControlChanged)
    assert (event.kind, event.requested_owner_app_id) == ("request", "123456789")
    assert (event.new_owner_app_id, event.previous_owner_app_id) == (None, None)
    assert event.metadata == "additional content that the caller wants to set"


@pytest.mark.parametrize(
    "build, kind", [(pass_thread_control, "pass"), (take_thread_control, "take"), (request_thread_control, "request")]
)
def test_handovers_under_standby_are_parsed_the_same_and_flagged(
    build: Callable[[], dict[str, Any]], kind: str
) -> None:
    # Given a handover event delivered under standby
    item = build()

    # When the body is parsed from standby, and from messaging
    (standby,) = parse_webhook_body(body(entry(item, key="standby")))
    (messaging,) = parse_webhook_body(body(entry(item)))

    # Then only the flag differs
    assert isinstance(standby, ThreadControlChanged) and isinstance(messaging, ThreadControlChanged)
    assert standby.kind == kind and standby.standby and not messaging.standby
    assert event_key(standby) == event_key(messaging)


@pytest.mark.parametrize(
    "item, reason",
    [
        (pass_thread_control(new_owner_app_id=None), "pass_thread_control without new_owner_app_id"),
        (request_thread_control(requested_owner_app_id=None), "request_thread_control without requested_owner_app_id"),
    ],
)
def test_handover_without_its_app_is_ignored(item: dict[str, Any], reason: str) -> None:
    # Given a handover that doesn't name the app it is about
    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored with the reason
    assert isinstance(event, IgnoredEvent) and event.reason == reason


def test_handover_with_an_app_id_too_long_is_unusable() -> None:
    # Given a pass to an app id longer than any id
    item = pass_thread_control(new_owner_app_id="1" * 256)

    # When the body is parsed
    event = parse_one(item)

    # Then it is unusable, with the reason
    assert isinstance(event, UnusableEvent)
    assert (event.kind, event.reason) == ("pass_thread_control", "new_owner_app_id longer than 255 characters")


def test_app_roles_change_is_ignored_by_name() -> None:
    # Given a page admin changing the apps' roles ("app_roles" in the same reference)
    item = {"recipient": {"id": PAGE_ID}, "timestamp": TIMESTAMP, "app_roles": {"123456789": ["primary_receiver"]}}

    # When the body is parsed
    event = parse_one(item)

    # Then it is ignored, naming it
    assert event == IgnoredEvent(PAGE_ID, "unsupported event: app_roles", item, kind="app_roles")
