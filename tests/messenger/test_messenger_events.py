"""Every Messenger event kind in the shapes Facebook sends, over HTTP with a real worker, real Redis and
PostgreSQL: referrals, notification opt-ins and handover events shape the conversation; shape rules hold;
nothing is dropped silently; a redelivery changes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airy_actors.models import Channel, Conversation, Message
from airy_actors.models.integrations import OutboxEvent
from tests.domain.facebook_payloads import (
    BOT_APP_ID,
    ENTRY_TIME,
    PAGE_ID,
    PAGE_INBOX_APP_ID,
    PSID,
    TIMESTAMP,
    TOKEN,
    ad_referral,
    body,
    chat_plugin_referral,
    entry,
    from_contact,
    message_with_ad_referral,
    notification_optin,
    notification_optin_as_documented,
    pass_thread_control,
    postback_with_referral,
    request_thread_control,
    shortlink_referral,
    take_thread_control,
)
from tests.fake_graph import FakeGraph
from tests.support import sign, wait_until


@pytest.fixture
def channel(db, fake_graph: FakeGraph) -> Channel:
    fake_graph.add_page(PAGE_ID, "Acme", token="PAGE-TOKEN")
    return Channel.create(source_channel_id=PAGE_ID, name="Acme", page_token="PAGE-TOKEN")


@pytest.fixture
def subscribed(api) -> None:
    """An integrator subscribed to every event, so that changes are written to the outbox."""
    assert api.post("/webhooks.subscribe", json={"url": "http://127.0.0.1:9/hook"}).status_code == 200


def deliver(api, *entries: dict[str, Any]) -> None:
    raw = json.dumps(body(*entries)).encode()
    assert api.post("/facebook", content=raw, headers=sign(raw)).status_code == 200


def conversation_of(api, psid: str = PSID, **expected: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        listed = api.post("/conversations.list", json={}).json()["data"]
        return next((c for c in listed if all(c["metadata"].get(k) == v for k, v in expected.items())), None)

    return wait_until(found, timeout=10, message=f"no conversation with {expected}")


def conversation_where(api, condition) -> dict[str, Any]:
    """Waits for the contact's conversation to satisfy ``condition(conversation)``."""

    def found() -> dict[str, Any] | None:
        listed = api.post("/conversations.list", json={}).json()["data"]
        return next((c for c in listed if condition(c)), None)

    return wait_until(found, timeout=10, message="the conversation did not change as expected")


def conversation_updates() -> int:
    return OutboxEvent.select().where(OutboxEvent.type == "conversation.updated").count()


def test_a_referral_alone_creates_the_conversation_before_any_message(api, worker, channel, subscribed):
    # When a person follows an m.me link, then an ad, then the Chat Plugin
    deliver(api, entry(shortlink_referral("spring_sale")))
    first = conversation_of(api)
    assert first["last_message"] is None
    assert first["metadata"]["referral"] == {
        "ref": "spring_sale",
        "source": "SHORTLINK",
        "type": "OPEN_THREAD",
        "received_at": "2024-06-10T12:44:15.123Z",
    }
    later = ad_referral()
    later["timestamp"] = TIMESTAMP + 1_000
    deliver(api, entry(later))
    plugin = chat_plugin_referral()
    plugin["timestamp"] = TIMESTAMP + 2_000
    deliver(api, entry(plugin))
    # Then the conversation keeps every referral, newest last, and the current one is the plugin's
    conversation = conversation_where(api, lambda c: len(c["metadata"].get("referrals", [])) == 3)
    referrals = conversation["metadata"]["referrals"]
    assert [r["source"] for r in referrals] == ["SHORTLINK", "ADS", "CUSTOMER_CHAT_PLUGIN"]
    assert referrals[1]["ad_id"] == "6045246247433"
    assert conversation["metadata"]["referral"]["referer_uri"] == "https://shop.example.com/pricing"
    # And integrators heard of each change; a redelivered referral changes nothing
    updates = conversation_updates()
    assert updates >= 3
    deliver(api, entry(plugin))
    wait_until(lambda: Message.select().count() == 0 and conversation_of(api), timeout=5)
    assert conversation_of(api)["metadata"]["referrals"] == referrals
    assert conversation_updates() == updates


def test_referrals_inside_a_postback_and_a_message_come_with_them(api, worker, channel):
    deliver(api, entry(postback_with_referral(), message_with_ad_referral()))
    wait_until(lambda: Message.select().count() == 2, timeout=10)
    conversation = conversation_of(api)
    assert [r["source"] for r in conversation["metadata"]["referrals"]] == ["SHORTLINK", "ADS"]
    assert conversation["last_message"] is not None


def test_notification_tokens_are_kept_stopped_and_resumed_and_sent_outside_the_window(
    api, worker, channel, fake_graph: FakeGraph
):
    # Given a contact who accepted recurring messages long ago (the 24-hour window is closed)
    fake_graph.add_notification_token(TOKEN, PSID, page_id=PAGE_ID)
    deliver(api, entry(notification_optin()))
    conversation = conversation_of(api)
    [token] = wait_until(lambda: conversation_of(api)["metadata"].get("notification_tokens"), timeout=10)
    assert token == {
        "token": TOKEN,
        "title": "Bird Facts",
        "frequency": "DAILY",
        "expires_at": "2038-01-01T00:00:00.000Z",
        "payload": "BIRD_FACTS",
        "status": "active",
    }
    # When the business sends with the token, outside the window
    sent = api.post(
        "/messages.send",
        json={"conversation_id": conversation["id"], "message": {"text": "New facts!"}, "notification_token": TOKEN},
    )
    assert sent.status_code == 200, sent.text
    wait_until(lambda: Message.get_by_id(sent.json()["id"]).delivery_state == "delivered", timeout=10)
    assert fake_graph.sent_messages[-1]["recipient"] == {"notification_messages_token": TOKEN}
    # When the contact stops them, a send is refused before Facebook is asked; resuming allows it again
    deliver(api, entry(notification_optin_as_documented("STOP NOTIFICATIONS")))
    conversation_of(api, notification_tokens=[{**token, "status": "stopped"}])
    refused = api.post(
        "/messages.send",
        json={"conversation_id": conversation["id"], "message": {"text": "More"}, "notification_token": TOKEN},
    )
    assert refused.status_code == 400 and "stopped" in refused.json()["message"]
    deliver(api, entry(notification_optin_as_documented("RESUME NOTIFICATIONS")))
    conversation_of(api, notification_tokens=[{**token, "status": "active"}])
    # And an unknown token is refused, and tokens never reach the logs
    unknown = api.post(
        "/messages.send",
        json={"conversation_id": conversation["id"], "message": {"text": "x"}, "notification_token": "nope"},
    )
    assert unknown.status_code == 400


def test_an_expired_notification_token_is_refused(api, worker, channel):
    deliver(api, entry(notification_optin(token_expiry_timestamp=TIMESTAMP + 1)))
    conversation = conversation_where(api, lambda c: c["metadata"].get("notification_tokens"))
    refused = api.post(
        "/messages.send",
        json={"conversation_id": conversation["id"], "message": {"text": "x"}, "notification_token": TOKEN},
    )
    assert refused.status_code == 400 and "expired" in refused.json()["message"]


@pytest.mark.parametrize("key", ["messaging", "standby"])
def test_handover_events_follow_the_threads_owner_and_requests(api, worker, channel, key):
    # When the bot passes the thread to the Page Inbox, an app requests it, and the bot takes it back
    deliver(api, entry(pass_thread_control(), key=key))
    conversation_of(api, thread_owner={"app_id": PAGE_INBOX_APP_ID, "since": "2024-06-10T12:44:15.123Z"})
    request = request_thread_control()
    request["timestamp"] = TIMESTAMP + 1_000
    deliver(api, entry(request, key=key))
    take = take_thread_control()
    take["timestamp"] = TIMESTAMP + 2_000
    deliver(api, entry(take, key=key))
    # Then the conversation says who owns the thread now, and keeps the request
    conversation = conversation_of(api, thread_owner={"app_id": BOT_APP_ID, "since": "2024-06-10T12:44:17.123Z"})
    [kept] = conversation["metadata"]["thread_requests"]
    assert kept["app_id"] == "123456789"
    # And a late redelivery of the first pass does not move the thread back
    deliver(api, entry(pass_thread_control(), key=key))
    assert conversation_of(api)["metadata"]["thread_owner"]["app_id"] == BOT_APP_ID


def test_pass_and_take_thread_control_call_facebook_and_follow(api, worker, channel, fake_graph: FakeGraph):
    raw = json.dumps(body(entry(from_contact(message={"mid": "m_hello", "text": "hi"})))).encode()
    assert api.post("/facebook", content=raw, headers=sign(raw)).status_code == 200
    conversation = conversation_of(api)
    passed = api.post(
        "/conversations.passThreadControl",
        json={"conversation_id": conversation["id"], "target_app_id": PAGE_INBOX_APP_ID, "metadata": "to a human"},
    )
    assert passed.status_code == 200, passed.text
    assert passed.json()["metadata"]["thread_owner"]["app_id"] == PAGE_INBOX_APP_ID
    assert fake_graph.handover_calls[-1]["action"] == "pass_thread_control"
    taken = api.post("/conversations.takeThreadControl", json={"conversation_id": conversation["id"]})
    assert taken.status_code == 200, taken.text
    assert taken.json()["metadata"]["thread_owner"]["app_id"] == "1517776481860111"
    unknown = api.post("/conversations.takeThreadControl", json={"conversation_id": "no-such-conversation"})
    assert unknown.status_code == 404


def test_shape_rules_escaped_emoji_digit_strings_and_missing_timestamps(api, worker, channel):
    # Given a message, a reaction to it with the emoji escaped as text, and a timestamp as a string of digits
    message = from_contact(timestamp=str(TIMESTAMP), message={"mid": "m_1", "text": "hello"})
    escaped = "\\u{2764}\\u{FE0F}"  # as text: a backslash, u, braces and hex
    reacted = from_contact(
        timestamp=TIMESTAMP + 1, reaction={"mid": "m_1", "action": "react", "reaction": "love", "emoji": escaped}
    )
    untimed = {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "message": {"mid": "m_2", "text": "no time"}}
    deliver(api, entry(message, reacted, untimed))
    wait_until(lambda: Message.select().count() == 2, timeout=10)
    first = Message.get(Message.source_message_id == "m_1")
    wait_until(lambda: Message.get(Message.source_message_id == "m_1").metadata.get("reaction"), timeout=10)
    first = Message.get(Message.source_message_id == "m_1")
    assert first.metadata["reaction"]["emoji"] == "\u2764\ufe0f" and first.sent_at == TIMESTAMP
    assert Message.get(Message.source_message_id == "m_2").sent_at == ENTRY_TIME


def test_an_ignored_event_leaves_one_log_line_with_its_kind_and_reason(api, worker, channel, caplog):
    caplog.set_level(logging.INFO, logger="airy_actors.ingestion")
    deliver(api, entry(from_contact(account_linking={"status": "linked", "authorization_code": "secret"})))
    wait_until(lambda: any(r.getMessage() == "event ignored" for r in caplog.records), timeout=10)
    [line] = [r for r in caplog.records if r.getMessage() == "event ignored"]
    assert line.kind and line.reason and "secret" not in repr(line.__dict__)
    assert Conversation.select().count() == 0
