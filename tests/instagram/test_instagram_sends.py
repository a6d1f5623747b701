"""``messages.send`` into Instagram conversations, over real HTTP with the send actors on real Redis and the fake
Graph API: the page's ``/{page_id}/messages`` with the page token, the window, the failure classes, retries, and
echoes that must not become second messages."""

from __future__ import annotations

import json
import secrets

import pytest

from airy_actors import ingestion, throttling
from airy_actors.conversations import ensure_conversation
from airy_actors.models import Channel, Conversation, Message
from airy_actors.throttling import PageThrottle, Rate
from airy_actors.timestamps import now_ms
from tests.fake_graph import IG_OUTSIDE_WINDOW, IG_RATE_LIMITED, INVALID_TOKEN, FakeGraph
from tests.instagram import payloads as ig
from tests.instagram.payloads import ACCOUNT_ID, IGSID, PAGE_ID, PAGE_TOKEN
from tests.sending.sends import send, wait_for_state
from tests.support import APP_ID, store_webhook_request, wait_until

HOUR_MS = 3_600_000
TEXT = {"text": "Yes, size M is in stock"}


@pytest.fixture
def chat(instagram_channel: Channel, fake_graph: FakeGraph):
    """Makes the conversation of a customer who wrote ``wrote_ago_ms`` ago (None: never)."""
    fake_graph.add_instagram_contact(IGSID, name="Ada", username="ada.l", account_id=ACCOUNT_ID)

    def make(wrote_ago_ms: int | None = 60_000) -> Conversation:
        ref = ensure_conversation(instagram_channel, IGSID)
        last = None if wrote_ago_ms is None else now_ms() - wrote_ago_ms
        Conversation.update(last_contact_message_at=last).where(Conversation.id == ref.conversation.id).execute()
        return Conversation.get_by_id(ref.conversation.id)

    return make


def test_a_send_goes_to_the_pages_messages_with_the_page_token_and_is_delivered(api, worker, chat, fake_graph):
    # When the account answers a customer who wrote a minute ago
    answer = send(api, chat().id, TEXT)

    # Then the message is pending at once, from the account, marked instagram
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert (message["delivery_state"], message["source"], message["sender"]) == (
        "pending",
        "instagram",
        {"id": ACCOUNT_ID},
    )
    # And it is delivered through the page's Send API, as given (no marker), with Instagram's message id
    delivered = wait_for_state(api, message["id"], "delivered")
    [call] = fake_graph.find_requests("POST", f"/{PAGE_ID}/messages")
    assert call.token == PAGE_TOKEN
    [sent] = fake_graph.sent_instagram_messages
    assert (sent["recipient"], sent["message"], sent["messaging_type"]) == ({"id": IGSID}, TEXT, "RESPONSE")
    assert (sent["page_id"], sent["account_id"]) == (PAGE_ID, ACCOUNT_ID)
    assert delivered["metadata"] == {"source_id": sent["message_id"]}
    assert fake_graph.sent_messages == []


def test_outside_the_window_a_send_is_refused_before_facebook_is_asked(api, chat, fake_graph):
    answer = send(api, chat(wrote_ago_ms=25 * HOUR_MS).id, TEXT)

    assert answer.status_code == 400
    assert "messaging window closed" in answer.json()["message"]
    assert Message.select().count() == 0
    assert fake_graph.requests == []


def test_human_agent_answers_up_to_seven_days(api, worker, chat, fake_graph):
    answer = send(api, chat(wrote_ago_ms=3 * 24 * HOUR_MS).id, TEXT, tag="HUMAN_AGENT")

    assert answer.status_code == 200, answer.text
    wait_for_state(api, answer.json()["id"], "delivered")
    [sent] = fake_graph.sent_instagram_messages
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_instagrams_window_error_fails_the_message_with_its_reason_at_once(api, worker, chat, fake_graph):
    # Given Instagram says the window closed (the customer's clock and ours disagree)
    fake_graph.close_window(IGSID)

    message = send(api, chat().id, TEXT).json()

    failed = wait_for_state(api, message["id"], "failed")
    assert failed["metadata"]["error"] == IG_OUTSIDE_WINDOW["message"]
    assert len(fake_graph.find_requests("POST", f"/{PAGE_ID}/messages")) == 1


def test_instagrams_rate_limit_is_retried_then_delivered(api, worker, chat, fake_graph, fast_retries):
    fake_graph.fail("POST", f"/{PAGE_ID}/messages", error=IG_RATE_LIMITED, times=2)

    message = send(api, chat().id, TEXT).json()

    wait_for_state(api, message["id"], "delivered")
    assert len(fake_graph.find_requests("POST", f"/{PAGE_ID}/messages")) == 3


def test_an_invalid_token_fails_the_message_and_flags_the_channel(api, worker, chat, fake_graph, instagram_channel):
    fake_graph.fail("POST", f"/{PAGE_ID}/messages", error=INVALID_TOKEN, times=-1)

    message = send(api, chat().id, TEXT).json()

    wait_for_state(api, message["id"], "failed")
    wait_until(lambda: Channel.get_by_id(instagram_channel.id).token_valid is False, message="token not flagged")


def test_a_disconnected_accounts_conversation_refuses_sends(api, chat, instagram_channel):
    conversation = chat()
    Channel.update(connected=False).where(Channel.id == instagram_channel.id).execute()

    answer = send(api, conversation.id, TEXT)

    assert answer.status_code == 400 and "disconnected" in answer.json()["message"]


def test_an_uploaded_file_is_sent_as_its_signed_url(api, worker, chat, fake_graph):
    upload = api.post("/media.upload", content=b"\x89PNG\r\n\x1a\n" + b"0" * 100, headers={"Content-Type": "image/png"})
    assert upload.status_code == 200, upload.text
    media = upload.json()

    message = send(api, chat().id, {"attachment": {"type": "image", "payload": {"media_id": media["media_id"]}}})

    wait_for_state(api, message.json()["id"], "delivered")
    [sent] = fake_graph.sent_instagram_messages
    assert sent["message"] == {"attachment": {"type": "image", "payload": {"url": media["url"]}}}
    assert fake_graph.find_requests("POST", "/me/message_attachments") == []


# --- echoes of our sends: Instagram names no app -----------------------------------------------------------


def ingest_echo(mid: str, text: str) -> ingestion.IngestionResult:
    request_id, _ = store_webhook_request(json.dumps(ig.body(ig.entry(ig.echo(mid, text)))).encode())
    return ingestion.ingest_webhook_request(request_id, app_id=APP_ID)


def test_an_echo_that_beats_the_send_actor_waits_for_its_mid(chat, instagram_channel, broker):
    # Given our send handed to Facebook, whose answer is not recorded yet
    conversation = chat()
    pending = Message.create(
        id="5b2c7a7e-0000-4000-8000-000000000001",
        conversation=conversation.id,
        channel=instagram_channel.id,
        content=TEXT,
        delivery_state="pending",
        from_contact=False,
        sender_id=ACCOUNT_ID,
        sent_at=now_ms(),
        send_state="in_flight",
        send_attempts=1,
        send_attempt_at=now_ms(),
    )

    # When its echo arrives first, the echo waits rather than become a message of its own
    first = ingest_echo("m_ours_early", TEXT["text"])
    assert first.deferred_event_id is not None
    assert Message.select().count() == 1

    # And once the actor recorded Facebook's answer, the echo finds the message by its mid
    Message.update(delivery_state="delivered", source_message_id="m_ours_early", send_state="done").where(
        Message.id == pending.id
    ).execute()
    again = ingestion.ingest_webhook_request(first.deferred_event_id, app_id=APP_ID)
    assert again.events_applied == 1 and again.messages_created == 0
    assert [m.id for m in Message.select()] == [pending.id]


def test_an_echo_settles_a_send_left_in_doubt_with_the_same_text(chat, instagram_channel, broker):
    # Given a send whose worker died in the call: failed, though Instagram may have it
    conversation = chat()
    doubtful = Message.create(
        id="5b2c7a7e-0000-4000-8000-000000000002",
        conversation=conversation.id,
        channel=instagram_channel.id,
        content=TEXT,
        delivery_state="failed",
        from_contact=False,
        sender_id=ACCOUNT_ID,
        sent_at=now_ms(),
        send_state="unconfirmed",
        metadata={"error": "the send was interrupted"},
    )

    # When an echo with another text comes, it is a message written elsewhere; with the same text, it is ours
    ingest_echo("m_other", "Something else")
    result = ingest_echo("m_ours_late", TEXT["text"])

    assert result.messages_created == 0
    settled = Message.get_by_id(doubtful.id)
    assert (settled.delivery_state, settled.source_message_id) == ("delivered", "m_ours_late")
    assert settled.metadata == {"source_id": "m_ours_late"}
    assert sorted(m.source_message_id for m in Message.select()) == ["m_other", "m_ours_late"]


# --- throttling --------------------------------------------------------------------------------------------


def test_instagram_accounts_are_throttled_at_instagrams_rate(broker, monkeypatch):
    # Given rates small enough to exhaust: Messenger 5, Instagram 2 per (long) bucket
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=5, bucket_ms=86_400_000))
    monkeypatch.setattr(throttling, "INSTAGRAM_TEXT_RATE", Rate(limit=2, bucket_ms=86_400_000))
    throttle = PageThrottle(broker.client, broker.namespace)
    # Ids of this test's own: the day-long buckets outlive it in Redis
    account, page = f"ig-{secrets.token_hex(4)}", f"fb-{secrets.token_hex(4)}"

    instagram = throttle.acquire_text(account, 4, platform="instagram", max_wait_ms=0)
    messenger = throttle.acquire_text(page, 7, platform="facebook", max_wait_ms=0)

    assert (instagram, messenger) == (2, 5)
    assert not throttle.acquire(account, media=False, platform="instagram", max_wait_ms=0)


def test_the_default_rates_stay_below_metas_limits():
    for platform, limit in (("facebook", 300), ("instagram", 100)):
        text, media = throttling.rates(platform)
        assert text.worst_second < limit
        assert media.worst_second < 10
