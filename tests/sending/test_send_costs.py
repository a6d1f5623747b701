"""What keeps a send cheap must not change what it does: the short paths of ``messages.send`` and of the
delivering actor leave the same state as the general ones (taken when an integrator listens), and a send that
waits for Facebook or for a throttling slot holds no database connection meanwhile, so that a worker can run
more threads than its pool has connections."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airy_actors import integrations, outbox, throttling
from airy_actors.db import database
from airy_actors.graph import get_graph_client
from airy_actors.models import Conversation, Message
from airy_actors.models.integrations import OutboxEvent
from airy_actors.sending import SendRequest, accept_send, deliver, delivery
from airy_actors.throttling import PageThrottle, Rate
from tests.fake_graph import FakeGraph
from tests.pool import taken_elsewhere
from tests.sending.conftest import PAGE_ID
from tests.support import wait_until
from workers.sending import get_throttle


@pytest.fixture(params=[False, True], ids=["nobody-listens", "an-integrator-listens"])
def listening(request: pytest.FixtureRequest, db: Any) -> Iterator[bool]:
    """Whether an integrator subscribed to every event type: sends then take the paths that write events."""
    if request.param:
        integrations.subscribe("https://integrator.example/hook", headers=None, events=None, signature_key=None)
    outbox.forget_subscriptions()
    yield request.param
    outbox.forget_subscriptions()


def run_as_the_actor(message_id: str, throttle: Any = None) -> int | None:
    """``deliver`` as the actor runs it: no connection taken beforehand, the thread's own handed back after."""
    try:
        throttle = throttle or get_throttle()
        return deliver(message_id, graph=get_graph_client(), throttle=throttle, release_connection=True)
    finally:
        database.close()


def test_an_accepted_send_is_the_conversations_last_message(conversation, broker, listening):
    # Given a conversation whose contact wrote a minute ago
    chat = conversation()
    # When the page answers
    message = accept_send(SendRequest(chat.id, {"text": "on its way"}, messaging_type="UPDATE"))
    # Then the message is stored pending, as sent
    stored = Message.get_by_id(message.id)
    assert (stored.delivery_state, stored.content, stored.from_contact) == ("pending", {"text": "on its way"}, False)
    assert (stored.sender_id, stored.sent_at, stored.metadata) == (PAGE_ID, message.sent_at, {})
    assert (stored.messaging_type, stored.message_tag, stored.send_state) == ("UPDATE", None, None)
    # And it is the conversation's last message, the contact's window and unread count untouched
    after = Conversation.get_by_id(chat.id)
    assert (after.last_message_id, after.last_message_at) == (message.id, message.sent_at)
    assert (after.unread_message_count, after.last_contact_message_at) == (
        chat.unread_message_count,
        chat.last_contact_message_at,
    )
    # And message.created is recorded when someone listens, only then
    created = OutboxEvent.select().where(OutboxEvent.type == "message.created")
    assert [event.payload["message"]["id"] for event in created] == ([message.id] if listening else [])


def test_a_delivered_send_records_the_same_state_whoever_listens(conversation, broker, fake_graph, listening):
    # Given an accepted send
    message = accept_send(SendRequest(conversation().id, {"text": "hi"}))
    # When it is delivered
    assert deliver(message.id, graph=get_graph_client(), throttle=get_throttle()) is None
    # Then it shows Facebook's id, its bookkeeping is done
    [sent] = fake_graph.sent_messages
    stored = Message.get_by_id(message.id)
    assert (stored.delivery_state, stored.source_message_id) == ("delivered", sent["message_id"])
    assert stored.metadata == {"source_id": sent["message_id"]}
    assert (stored.send_state, stored.send_attempts, stored.send_attempt_at) == ("done", 1, None)
    # And message.updated, with that state, is recorded when someone listens, only then
    updated = [e.payload["message"] for e in OutboxEvent.select().where(OutboxEvent.type == "message.updated")]
    if listening:
        [event] = updated
        assert (event["id"], event["delivery_state"], event["metadata"]) == (message.id, "delivered", stored.metadata)
    else:
        assert updated == []


def test_a_send_waiting_for_facebook_holds_no_database_connection(conversation, broker, fake_graph: FakeGraph, request):
    # Given an accepted send, Facebook answering in a second and a half, and a pool of one connection
    message = accept_send(SendRequest(conversation().id, {"text": "hi"}))
    fake_graph.latency_ms = 1_500
    request.getfixturevalue("one_connection")
    # When the actor's run waits for Facebook's answer
    run = threading.Thread(target=run_as_the_actor, args=(message.id,))
    run.start()
    wait_until(lambda: fake_graph.find_requests("POST", "/me/messages"), timeout=10, message="no send reached Facebook")
    # Then the only connection is free meanwhile: the attempt in flight can be read with it
    with database.connection_context():
        assert Message.get_by_id(message.id).send_state == "in_flight"
    run.join(timeout=30)
    assert not run.is_alive()
    # And the run took a connection again to record Facebook's answer
    with database.connection_context():
        assert Message.get_by_id(message.id).delivery_state == "delivered"


class WatchedThrottle:
    """The process's throttle; ``while_waiting`` runs each time a send has handed back what it must and sleeps."""

    def __init__(self, while_waiting: Callable[[], None]) -> None:
        self.throttle = get_throttle()
        self.while_waiting = while_waiting

    def acquire(
        self,
        page_id: str,
        *,
        media: bool,
        platform: str = "facebook",
        before_waiting: Callable[[], object] | None = None,
    ) -> bool:
        def then_watch() -> None:
            if before_waiting is not None:
                before_waiting()
            self.while_waiting()

        return self.throttle.acquire(page_id, media=media, platform=platform, before_waiting=then_watch)


def test_a_send_waiting_for_a_throttling_slot_holds_no_database_connection(
    conversation, broker, fake_graph: FakeGraph, monkeypatch: pytest.MonkeyPatch, request
):
    # Given a page that gets no slot at all, a short wait for one, and a pool of one connection
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=0, bucket_ms=100))
    monkeypatch.setattr(throttling, "MAX_WAIT_MS", 400)
    message = accept_send(SendRequest(conversation().id, {"text": "hi"}))
    request.getfixturevalue("one_connection")
    free_while_waiting: list[bool] = []

    def look() -> None:
        free_while_waiting.append(not taken_elsewhere())

    # When the actor runs the send
    again_in_ms = run_as_the_actor(message.id, WatchedThrottle(look))
    # Then it waited for a slot with the only connection free, and gave up for now without calling Facebook
    assert free_while_waiting and all(free_while_waiting)
    assert again_in_ms is not None and again_in_ms >= delivery.THROTTLE_RETRY_MS
    assert fake_graph.sent_messages == []
    # And waiting cost no attempt
    with database.connection_context():
        stored = Message.get_by_id(message.id)
    assert (stored.delivery_state, stored.send_state, stored.send_attempts) == ("pending", None, None)


def test_a_page_gets_at_most_its_limit_of_slots_in_a_bucket(broker, monkeypatch: pytest.MonkeyPatch):
    # Given pages allowed 3 sends a day (one bucket for the whole test)
    monkeypatch.setattr(throttling, "TEXT_RATE", Rate(limit=3, bucket_ms=86_400_000))
    throttle = PageThrottle(broker.client, broker.namespace)
    # When 5 sends of a page ask for a slot, without waiting
    granted = [throttle.acquire("page-a", media=False, max_wait_ms=0) for _ in range(5)]
    # Then 3 get one, and another page's slots are its own
    assert granted == [True, True, True, False, False]
    assert throttle.acquire("page-b", media=False, max_wait_ms=0)
