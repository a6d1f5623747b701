"""Sends accepted and delivered together: each keeps what it would get alone (its answer, its error, its one
call to Facebook, its retries), while the batch shares the queries, the throttling request and the enqueue."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from airy_actors import sending, throttling
from airy_actors.conversations import ensure_conversation
from airy_actors.errors import BadRequest, NotFound
from airy_actors.graph import ErrorKind, GraphError, get_graph_client
from airy_actors.models import Channel, Conversation, Message
from airy_actors.sending import SendRequest, accept_send, accept_sends, deliver_batch, delivery, outcomes
from airy_actors.throttling import PageThrottle, Rate
from airy_actors.timestamps import now_ms
from tests.fake_graph import FakeGraph
from tests.sending.conftest import HOUR_MS, PAGE_ID
from tests.sending.sends import send, wait_for_state
from workers.sending import get_throttle


def run_batch(ids: list[str], graph: Any = None) -> list[tuple[list[str], int]]:
    return deliver_batch(ids, graph=graph or get_graph_client(), throttle=get_throttle())


class AnsweringByText:
    """A Send API that fails the messages whose text names an error, and accepts the others."""

    def __init__(self, errors: dict[str, GraphError]) -> None:
        self.errors = errors
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def send_message(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        text = body["message"]["text"]
        with self.lock:
            self.calls.append(text)
        if text in self.errors:
            raise self.errors[text]
        return {"recipient_id": body["recipient"]["id"], "message_id": f"m_{text}"}


def test_a_batch_accepts_each_send_as_alone_and_refuses_only_the_bad_ones(any_db, fake_graph: FakeGraph, broker):
    # Given a conversation whose contact wrote a minute ago, and one whose contact wrote two days ago
    channel = Channel.create(source_channel_id=PAGE_ID, page_token="TOKEN")
    open_chat = ensure_conversation(channel, "2001").conversation
    closed_chat = ensure_conversation(channel, "2002").conversation
    Conversation.update(last_contact_message_at=now_ms() - 60_000).where(Conversation.id == open_chat.id).execute()
    Conversation.update(last_contact_message_at=now_ms() - 48 * HOUR_MS).where(
        Conversation.id == closed_chat.id
    ).execute()
    # When five sends arrive together, three of them wrong
    results = accept_sends(
        [
            SendRequest(open_chat.id, {"text": "one"}),
            SendRequest("no-such-conversation", {"text": "lost"}),
            SendRequest(closed_chat.id, {"text": "late"}),
            SendRequest(open_chat.id, {"text": "tagged"}, messaging_type="MESSAGE_TAG"),
            SendRequest(open_chat.id, {"text": "two"}, messaging_type="UPDATE"),
        ]
    )
    # Then each wrong one gets its own error, as it would alone
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], BadRequest) and "window closed" in results[2].message
    assert isinstance(results[3], BadRequest) and "tag is required" in results[3].message
    # And the good ones are stored pending, as sent, and the last of them is the conversation's last message
    first, last = results[0], results[4]
    assert isinstance(first, Message) and isinstance(last, Message)
    stored = {message.id: message for message in Message.select()}
    assert set(stored) == {first.id, last.id}
    assert (stored[last.id].content, stored[last.id].messaging_type) == ({"text": "two"}, "UPDATE")
    assert stored[first.id].delivery_state == stored[last.id].delivery_state == "pending"
    assert Conversation.get_by_id(open_chat.id).last_message_id == last.id
    assert Conversation.get_by_id(closed_chat.id).last_message_id != last.id


def test_sends_posted_together_are_each_answered_and_delivered_once(api, worker, conversation, fake_graph):
    # Given two open conversations, and Facebook answering in a tenth of a second
    fake_graph.latency_ms = 100
    chats = [conversation(psid="2001"), conversation(psid="2002")]
    bodies = [(chats[n % 2].id, {"text": f"answer {n}"}) for n in range(12)] + [("nowhere", {"text": "lost"})]
    answers: dict[int, Any] = {}

    # When they are posted at the same time
    def post(number: int) -> None:
        conversation_id, message = bodies[number]
        answers[number] = send(api, conversation_id, message)

    posting = [threading.Thread(target=post, args=(number,)) for number in range(len(bodies))]
    for thread in posting:
        thread.start()
    for thread in posting:
        thread.join(timeout=30)
    # Then each is answered with its own message, the bad one with its own 404
    assert answers[12].status_code == 404
    for number in range(12):
        assert answers[number].status_code == 200, answers[number].text
        assert answers[number].json()["content"] == bodies[number][1]
    # And each is delivered, Facebook getting each once
    for number in range(12):
        wait_for_state(api, answers[number].json()["id"], "delivered")
    assert sorted(sent["message"]["text"] for sent in fake_graph.sent_messages) == sorted(
        f"answer {n}" for n in range(12)
    )


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "an-sqlite-without-returning"])
def test_a_batch_is_delivered_with_one_call_each_on_both_engines(
    any_db, fake_graph: FakeGraph, broker, monkeypatch, returning
):
    # Given three sends accepted together on each engine in turn (and on an SQLite older than RETURNING)
    monkeypatch.setattr(delivery, "supports_returning", lambda: returning)
    monkeypatch.setattr(outcomes, "supports_returning", lambda: returning)
    fake_graph.add_page(PAGE_ID, "Acme", "TOKEN")
    channel = Channel.create(source_channel_id=PAGE_ID, page_token="TOKEN")
    chat = ensure_conversation(channel, "2001").conversation
    Conversation.update(last_contact_message_at=now_ms()).execute()
    messages = accept_sends([SendRequest(chat.id, {"text": f"answer {n}"}) for n in range(3)])
    ids = [message.id for message in messages]
    # When the batch is delivered
    assert run_batch(ids) == []
    # Then each went to Facebook once, and shows Facebook's id
    by_marker = {sent["message"]["metadata"]: sent["message_id"] for sent in fake_graph.sent_messages}
    assert len(fake_graph.sent_messages) == 3
    for message in Message.select().where(Message.id.in_(ids)):
        mid = by_marker[f"airy:{message.id}"]
        assert (message.delivery_state, message.source_message_id, message.metadata) == (
            "delivered",
            mid,
            {"source_id": mid},
        )
        assert (message.send_state, message.send_attempts, message.send_attempt_at) == ("done", 1, None)
    # And running it again sends nothing more
    assert run_batch(ids) == []
    assert len(fake_graph.sent_messages) == 3


def test_each_error_in_a_batch_takes_the_path_of_one_message(conversation, broker, fast_retries):
    # Given a batch of four: one Facebook refuses for good, one it finds busy, one with a bad token, one fine
    chat = conversation()
    texts = ["fine", "refused", "busy", "token"]
    ids = [accept_send(SendRequest(chat.id, {"text": text})).id for text in texts]
    graph = AnsweringByText(
        {
            "refused": GraphError("No matching user found", kind=ErrorKind.PERMANENT, code=100, http_status=400),
            "busy": GraphError("Service temporarily unavailable", kind=ErrorKind.TRANSIENT, http_status=500),
            "token": GraphError("Error validating access token", kind=ErrorKind.TOKEN_INVALID, http_status=400),
        }
    )
    # When the batch is delivered
    again = run_batch(ids, graph)
    # Then each was sent once; the fine one is delivered; the refused ones failed with Facebook's reason
    assert sorted(graph.calls) == sorted(texts)
    stored = {message.content["text"]: message for message in Message.select()}
    assert (stored["fine"].delivery_state, stored["fine"].source_message_id) == ("delivered", "m_fine")
    assert (stored["refused"].delivery_state, stored["refused"].metadata["error"]) == (
        "failed",
        "No matching user found",
    )
    assert stored["token"].delivery_state == "failed"
    assert Channel.get_by_id(chat.channel_id).token_valid is False
    # And the busy one is retried alone, after its backoff, its attempt counted
    [(retried, delay)] = again
    assert retried == [stored["busy"].id] and delay >= delivery.MIN_BACKOFF_MS
    assert (stored["busy"].delivery_state, stored["busy"].send_state, stored["busy"].send_attempts) == (
        "pending",
        "queued",
        1,
    )


def test_two_runs_of_the_same_batch_send_each_message_once(conversation, broker, fake_graph, monkeypatch):
    # Given two runs loaded the same batch at the same time, and the first one sent it
    chat = conversation()
    ids = [accept_send(SendRequest(chat.id, {"text": f"answer {n}"})).id for n in range(3)]
    loaded_early = delivery._load_many(ids)
    assert run_batch(ids) == []
    # When the second run goes on with what it loaded
    monkeypatch.setattr(delivery, "_load_many", lambda message_ids: loaded_early)
    assert run_batch(ids) == []
    # Then its claims fail, and Facebook got each message once
    assert len(fake_graph.sent_messages) == 3
    assert {message.send_attempts for message in Message.select()} == {1}


def test_a_batch_never_sends_a_message_whose_attempt_is_in_flight(conversation, broker, fake_graph):
    # Given a batch of two, one of which another run is sending right now
    chat = conversation()
    sending_now, waiting = (accept_send(SendRequest(chat.id, {"text": text})).id for text in ("now", "next"))
    Message.update(send_state="in_flight", send_attempts=1, send_attempt_at=now_ms()).where(
        Message.id == sending_now
    ).execute()
    # When the batch runs
    again = run_batch([sending_now, waiting])
    # Then only the other one is sent; the one in flight is handed to a run of its own, which waits for it
    assert [sent["message"]["text"] for sent in fake_graph.sent_messages] == ["next"]
    assert again == [([sending_now], 0)]
    assert sending.deliver(sending_now, graph=get_graph_client(), throttle=get_throttle()) is not None
    assert len(fake_graph.sent_messages) == 1


def test_a_claimed_send_that_waited_too_long_for_a_thread_is_not_made(conversation, broker, fake_graph, monkeypatch):
    # Given no time at all between claiming an attempt and making the call
    monkeypatch.setattr(delivery, "ATTEMPT_MARGIN_MS", 0)
    chat = conversation()
    ids = [accept_send(SendRequest(chat.id, {"text": f"answer {n}"})).id for n in range(2)]
    # When the batch runs
    again = run_batch(ids)
    # Then nothing reaches Facebook, the attempts are given back, and each message runs again soon
    assert fake_graph.requests == []
    assert sorted(ids) == sorted(message_id for group, _ in again for message_id in group)
    for message in Message.select():
        assert (message.delivery_state, message.send_state, message.send_attempts) == ("pending", "queued", 0)


def test_a_batch_takes_what_slots_a_page_has_and_runs_the_rest_later(conversation, broker, fake_graph, monkeypatch):
    # Given a page allowed 2 sends a day (one bucket for the whole test), and no wait for a slot
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=2, bucket_ms=86_400_000))
    monkeypatch.setattr(throttling, "MAX_WAIT_MS", 0)
    chat = conversation()
    ids = [accept_send(SendRequest(chat.id, {"text": f"answer {n}"})).id for n in range(5)]
    # When a batch of five runs
    again = run_batch(ids)
    # Then two are sent, and the three others run again together later, waiting having cost no attempt
    assert len(fake_graph.sent_messages) == 2
    [(later, delay)] = again
    assert len(later) == 3 and delay >= delivery.THROTTLE_RETRY_MS
    assert {Message.get_by_id(message_id).send_attempts for message_id in later} == {None}


def test_a_page_gives_a_batch_the_slots_left_in_its_bucket(broker, monkeypatch: pytest.MonkeyPatch):
    # Given pages allowed 5 sends a day (one bucket for the whole test)
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=5, bucket_ms=86_400_000))
    throttle = PageThrottle(broker.client, broker.namespace)
    page, other_page = f"page-{uuid.uuid4().hex}", f"page-{uuid.uuid4().hex}"  # their buckets outlive the test
    # When batches of a page ask for 3 slots each, without waiting
    granted = [throttle.acquire_text(page, 3, max_wait_ms=0) for _ in range(3)]
    # Then the first gets 3, the second what is left, the third none; single sends find none either
    assert granted == [3, 2, 0]
    assert not throttle.acquire(page, media=False, max_wait_ms=0)
    assert throttle.acquire_text(other_page, 3, max_wait_ms=0) == 3
