"""Delivering through the Send API with a worker on real Redis: success, echoes, and each class of error."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from airy_actors import sending
from airy_actors.models import Message, WebhookRequest
from airy_actors.sending import delivery
from tests.fake_graph import (
    INVALID_PARAMETER,
    OUTSIDE_WINDOW,
    PERMISSION_DENIED,
    RATE_LIMITED,
    TRANSIENT,
    USER_UNAVAILABLE,
    FakeGraph,
)
from tests.sending.conftest import PAGE_ID, PAGE_TOKEN
from tests.sending.sends import info, send, wait_for_state
from tests.support import APP_SECRET, wait_until
from workers.sending import deliver_message, deliver_messages, sweep_sends

TEXT = {"text": "Your order has shipped"}


def sends_to_facebook(fake_graph: FakeGraph) -> list[Any]:
    return fake_graph.find_requests("POST", "/me/messages")


def test_a_sent_message_is_delivered_once_with_facebooks_id(api, worker, conversation, fake_graph: FakeGraph):
    # Given a contact who wrote a minute ago
    chat = conversation(psid="2001")
    # When the page answers
    message_id = send(api, chat.id, TEXT).json()["id"]
    # Then Facebook got it once, for the contact, and the message shows Facebook's id
    delivered = wait_for_state(api, message_id, "delivered")
    [sent] = fake_graph.sent_messages
    assert delivered["metadata"]["source_id"] == sent["message_id"]
    assert sent["recipient"] == {"id": "2001"}
    assert sent["messaging_type"] == "RESPONSE"
    assert sent["page_id"] == PAGE_ID
    assert sent["message"]["text"] == TEXT["text"]
    assert delivered["content"] == TEXT
    assert [r.token for r in sends_to_facebook(fake_graph)] == [PAGE_TOKEN]
    assert Message.get_by_id(message_id).source_message_id == sent["message_id"]


def test_the_message_is_forwarded_as_is(api, worker, conversation, fake_graph: FakeGraph):
    # A message with its own metadata and quick replies is what Facebook receives, byte for byte
    message = {
        "text": "Pick one",
        "quick_replies": [{"content_type": "text", "title": "Red", "payload": "RED"}],
        "metadata": "crm:ticket-42",
    }
    message_id = send(api, conversation().id, message, messaging_type="UPDATE").json()["id"]
    wait_for_state(api, message_id, "delivered")
    [sent] = fake_graph.sent_messages
    assert sent["message"] == message
    assert sent["messaging_type"] == "UPDATE"


def test_our_echo_never_becomes_a_second_message(api, worker, conversation, fake_graph: FakeGraph):
    # Given Facebook echoes every accepted message to our webhook
    fake_graph.deliver_echoes_to(f"{api.base_url}/facebook", APP_SECRET)
    chat = conversation()
    # When the page sends two messages
    ids = [send(api, chat.id, {"text": f"answer {n}"}).json()["id"] for n in range(2)]
    for message_id in ids:
        wait_for_state(api, message_id, "delivered")
    fake_graph.flush_echoes()
    assert [echo.status for echo in fake_graph.echoes] == [200, 200]
    wait_until(
        lambda: (
            WebhookRequest.select().where(WebhookRequest.processed_at.is_null()).count() == 0
            and WebhookRequest.select().count() >= 2
        ),
        message="echoes not ingested",
    )
    # Then the conversation holds exactly those two messages, each delivered under its Facebook id
    listed = api.post("/messages.list", json={"conversation_id": chat.id}).json()["data"]
    assert sorted(m["id"] for m in listed) == sorted(ids)
    mids = {sent["message_id"] for sent in fake_graph.sent_messages}
    assert {m["metadata"]["source_id"] for m in listed} == mids


def test_an_invalid_token_fails_the_message_and_flags_the_channel(api, worker, conversation, fake_graph):
    chat = conversation()
    fake_graph.invalidate_token(PAGE_TOKEN)
    message_id = send(api, chat.id, TEXT).json()["id"]
    failed = wait_for_state(api, message_id, "failed")
    assert isinstance(failed["metadata"]["error"], str)
    assert "Error validating access token" in failed["metadata"]["error"]
    assert len(sends_to_facebook(fake_graph)) == 1
    channel = api.post("/conversations.info", json={"conversation_id": chat.id}).json()["channel"]
    assert channel["token_valid"] is False


@pytest.mark.parametrize(
    "error",
    [USER_UNAVAILABLE, OUTSIDE_WINDOW, INVALID_PARAMETER, PERMISSION_DENIED],
    ids=["551-user-unavailable", "2018278-outside-window", "100-bad-payload", "200-permission"],
)
def test_a_permanent_error_fails_the_message_at_once_with_facebooks_reason(
    api, worker, conversation, fake_graph: FakeGraph, error
):
    fake_graph.fail("POST", "/me/messages", error=error, times=-1)
    chat = conversation()
    message_id = send(api, chat.id, TEXT).json()["id"]
    failed = wait_for_state(api, message_id, "failed")
    assert failed["metadata"]["error"] == error["message"]
    assert len(sends_to_facebook(fake_graph)) == 1
    assert fake_graph.sent_messages == []
    channel = api.post("/conversations.info", json={"conversation_id": chat.id}).json()["channel"]
    assert channel["token_valid"] is True


def test_a_text_facebook_finds_too_long_fails_with_its_reason(api, worker, conversation, fake_graph):
    message_id = send(api, conversation().id, {"text": "x" * 2001}).json()["id"]
    failed = wait_for_state(api, message_id, "failed")
    assert "2000" in failed["metadata"]["error"]


@pytest.mark.parametrize(
    ("error", "status"), [(RATE_LIMITED, 400), (TRANSIENT, 500)], ids=["613-throttled", "500-transient"]
)
def test_throttling_and_transient_errors_are_retried_until_delivered(
    api, worker, fast_retries, conversation, fake_graph: FakeGraph, error, status
):
    # Given Facebook refuses the next two sends
    fake_graph.fail("POST", "/me/messages", error=error, status=status, times=2)
    # When the page answers
    message_id = send(api, conversation().id, TEXT).json()["id"]
    # Then the third attempt delivers it, once
    delivered = wait_for_state(api, message_id, "delivered")
    assert len(sends_to_facebook(fake_graph)) == 3
    [sent] = fake_graph.sent_messages
    assert delivered["metadata"] == {"source_id": sent["message_id"]}


def test_when_retries_run_out_the_message_fails_with_the_reason(api, worker, fast_retries, conversation, fake_graph):
    fake_graph.fail("POST", "/me/messages", error=TRANSIENT, status=500, times=-1)
    message_id = send(api, conversation().id, TEXT).json()["id"]
    failed = wait_for_state(api, message_id, "failed")
    assert failed["metadata"]["error"].startswith(TRANSIENT["message"])
    assert "gave up after 4 attempts" in failed["metadata"]["error"]
    assert len(sends_to_facebook(fake_graph)) == delivery.MAX_SEND_ATTEMPTS == 4


def test_a_timed_out_send_that_facebook_accepted_is_not_sent_again(
    api, worker, broker, fast_retries, monkeypatch, conversation, fake_graph: FakeGraph
):
    # Given Facebook echoes its sends, but answers the first one after our 2 s timeout
    monkeypatch.setattr(delivery, "ECHO_GRACE_MS", 6_000)
    fake_graph.deliver_echoes_to(f"{api.base_url}/facebook", APP_SECRET)
    fake_graph.latency_ms = 2_500
    message_id = send(api, conversation().id, TEXT).json()["id"]
    wait_until(lambda: sends_to_facebook(fake_graph), message="the send did not reach Facebook")
    fake_graph.latency_ms = 0
    # When the client gives up but Facebook accepts it all the same
    delivered = wait_for_state(api, message_id, "delivered", timeout=20)
    # Then the echo confirms the message, and the retry does not send it a second time
    [sent] = fake_graph.sent_messages
    assert delivered["metadata"]["source_id"] == sent["message_id"]
    broker.join("sending", timeout=15_000)  # the scheduled retry has run
    assert len(sends_to_facebook(fake_graph)) == 1
    assert info(api, message_id)["delivery_state"] == "delivered"


def test_a_send_that_keeps_breaking_is_failed_on_its_last_try_not_left_pending(
    api, worker, conversation, fake_graph: FakeGraph, monkeypatch
):
    # Given something around the send breaks every time (not Facebook: a bug, the database)
    def broken(message_id: str, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sending, "deliver", broken)
    message = sending.accept_send(sending.SendRequest(conversation().id, TEXT))
    # When Dramatiq runs out of retries
    deliver_message.send_with_options(args=(message.id,), max_retries=0)
    # Then the message is failed with a reason, not left pending
    failed = wait_for_state(api, message.id, "failed")
    assert failed["metadata"]["error"] == "the message could not be sent: internal error (RuntimeError)"


def test_a_send_accepted_while_the_broker_is_down_is_picked_up_by_the_sweeper(
    api, worker, conversation, fake_graph: FakeGraph, monkeypatch
):
    # Given Redis refuses the enqueue
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis is down")

    chat = conversation()
    with monkeypatch.context() as patch:
        patch.setattr(deliver_messages, "send", refuse)
        answer = send(api, chat.id, TEXT)
    # Then the message is accepted all the same, pending
    assert answer.status_code == 200
    assert answer.json()["delivery_state"] == "pending"
    # And once it is overdue, the sweeper enqueues it and it is delivered
    monkeypatch.setattr(delivery, "SWEEP_GRACE_MS", 0)
    sweep_sends()  # the worker's periodic sweep may get there first; either way it is one send
    wait_for_state(api, answer.json()["id"], "delivered")
    assert len(fake_graph.sent_messages) == 1
