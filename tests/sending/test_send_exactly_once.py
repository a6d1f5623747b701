"""The exactly-once bookkeeping of a send, driven step by step without a worker: attempts in flight, sends
in doubt, echoes that settle them, the sweeper."""

from __future__ import annotations

import pytest

from airy_actors import sending
from airy_actors.conversations import ensure_conversation
from airy_actors.graph import ErrorKind, GraphError, get_graph_client
from airy_actors.ingestion import ingest_webhook_request
from airy_actors.models import Channel, Conversation, Message
from airy_actors.sending import SendRequest, accept_send, deliver, delivery, stale_sends
from airy_actors.timestamps import now_ms
from tests.fake_graph import FakeGraph
from tests.sending.conftest import PAGE_ID
from tests.support import APP_ID, echo, entry, store_webhook_request, webhook_body
from workers.sending import get_throttle

PSID = "2001"


@pytest.fixture
def pending(conversation, broker) -> Message:
    """A message accepted by messages.send and not yet picked up by any worker."""
    return accept_send(SendRequest(conversation(psid=PSID).id, {"text": "hi"}))


def run(message: Message) -> int | None:
    return deliver(message.id, graph=get_graph_client(), throttle=get_throttle())


def reload(message: Message) -> Message:
    return Message.get_by_id(message.id)


def interrupt(message: Message, started_ago_ms: int) -> None:
    """What a worker killed during its call to Facebook leaves behind."""
    Message.update(send_state="in_flight", send_attempts=1, send_attempt_at=now_ms() - started_ago_ms).where(
        Message.id == message.id
    ).execute()


def our_echo(message: Message, mid: str) -> None:
    """Facebook's echo of ``message`` (with the marker we asked it to carry), ingested."""
    event = echo(PAGE_ID, PSID, mid, "hi", app_id=APP_ID)
    event["message"]["metadata"] = f"airy:{message.id}"
    row_id, _ = store_webhook_request(webhook_body(entry(PAGE_ID, event)))
    ingest_webhook_request(row_id, app_id=APP_ID)


def test_the_send_body_carries_our_marker_only_when_the_caller_set_no_metadata(pending):
    assert sending.send_body(pending, PSID)["message"] == {"text": "hi", "metadata": f"airy:{pending.id}"}
    pending.content = {"text": "hi", "metadata": "theirs"}
    assert sending.send_body(pending, PSID)["message"] == {"text": "hi", "metadata": "theirs"}


def test_a_run_that_finds_an_attempt_in_flight_does_not_send(pending, fake_graph: FakeGraph):
    # Given another run is calling Facebook for this message right now
    interrupt(pending, started_ago_ms=100)
    # When a second run of the actor gets the message (a redelivery, a sweep)
    again_in = run(pending)
    # Then it does not call Facebook; it looks again once the attempt could have timed out
    assert fake_graph.requests == []
    assert again_in is not None and again_in >= delivery.attempt_stale_ms() - 200
    assert reload(pending).delivery_state == "pending"


def test_an_interrupted_send_waits_for_its_echo_and_is_settled_by_it(pending, fake_graph: FakeGraph):
    # Given a worker died during its call, longer ago than any call can take
    interrupt(pending, started_ago_ms=delivery.attempt_stale_ms() + 1_000)
    # When its message is run again, it waits for the echo rather than sending
    assert run(pending) is not None
    assert fake_graph.requests == []
    # And when the echo arrives, the message is delivered under the echo's mid
    our_echo(pending, "m_accepted")
    message = reload(pending)
    assert (message.delivery_state, message.source_message_id) == ("delivered", "m_accepted")
    assert message.metadata == {"source_id": "m_accepted"}
    assert Message.select().count() == 1
    # And the run after that has nothing to do
    assert run(pending) is None
    assert fake_graph.requests == []


def test_an_interrupted_send_never_confirmed_fails_saying_so_and_a_late_echo_still_delivers_it(
    pending, fake_graph: FakeGraph
):
    # Given a worker died during its call, and no echo came for longer than an echo takes
    interrupt(pending, started_ago_ms=delivery.ECHO_WAIT_MS + 1_000)
    # When the message is run again
    assert run(pending) is None
    # Then it fails without a second call, saying delivery is unknown
    message = reload(pending)
    assert message.delivery_state == "failed"
    assert "may or may not have been delivered" in message.metadata["error"]
    assert fake_graph.requests == []
    # And an echo that arrives after all turns it delivered
    our_echo(pending, "m_late")
    message = reload(pending)
    assert (message.delivery_state, message.metadata) == ("delivered", {"source_id": "m_late"})


def test_an_echo_settles_a_send_that_a_crash_left_failed_for_another_reason(pending, fake_graph: FakeGraph):
    # Given a worker that died around its call, and a later run that gave up on the message for its own reasons
    interrupt(pending, started_ago_ms=50)
    Message.update(send_state="done").where(Message.id == pending.id).execute()
    sending.record_failed(pending.id, "the message could not be sent: internal error (OperationalError)")
    assert reload(pending).delivery_state == "failed"
    # When Facebook's echo of it arrives, however late
    our_echo(pending, "m_accepted_after_all")
    # Then the message is delivered: Facebook has it, whatever we concluded
    message = reload(pending)
    assert (message.delivery_state, message.metadata) == ("delivered", {"source_id": "m_accepted_after_all"})
    assert Message.select().count() == 1


def test_an_echo_that_overtakes_the_answer_is_the_same_message(pending, fake_graph: FakeGraph):
    # Given Facebook accepted the message, and its echo was ingested before the worker recorded the answer
    interrupt(pending, started_ago_ms=50)
    our_echo(pending, "m_1")
    # When the worker records Facebook's answer
    sending.record_delivered(pending.id, "m_1")
    # Then there is one message, delivered once as m_1
    [message] = Message.select()
    assert (message.delivery_state, message.source_message_id, message.send_state) == ("delivered", "m_1", "done")


def test_an_echo_without_our_marker_is_not_taken_for_a_pending_message(pending):
    event = echo(PAGE_ID, PSID, "m_other", "hi", app_id=APP_ID)
    row_id, _ = store_webhook_request(webhook_body(entry(PAGE_ID, event)))
    ingest_webhook_request(row_id, app_id=APP_ID)
    assert reload(pending).delivery_state == "pending"
    assert reload(pending).source_message_id is None


def test_two_runs_of_the_same_message_send_it_once(pending, fake_graph: FakeGraph, monkeypatch):
    # Given two runs loaded the message at the same time, and the first one sent it
    loaded_early = delivery._load(pending.id)
    assert run(pending) is None
    # When the second run goes on with what it loaded
    monkeypatch.setattr(delivery, "_load", lambda message_id: loaded_early)
    assert run(pending) is None
    # Then its claim of the attempt fails, and Facebook got the message once
    assert len(fake_graph.sent_messages) == 1
    assert reload(pending).send_attempts == 1


def test_the_sweeper_re_enqueues_only_sends_left_behind(conversation, broker, monkeypatch):
    chat = conversation()
    fresh = accept_send(SendRequest(chat.id, {"text": "fresh"}))
    left = accept_send(SendRequest(chat.id, {"text": "left behind"}))
    Message.update(send_due_at=now_ms() - delivery.SWEEP_GRACE_MS - 1_000).where(Message.id == left.id).execute()
    assert stale_sends() == [left.id]
    # Once swept, it is left alone for a while, so a backlog is not enqueued again at every sweep
    assert stale_sends() == []
    assert reload(fresh).delivery_state == "pending"


def test_the_backoff_grows_honours_retry_after_and_leaves_time_for_an_echo(monkeypatch):
    monkeypatch.setattr(delivery, "MIN_BACKOFF_MS", 1_000)
    monkeypatch.setattr(delivery, "MAX_BACKOFF_MS", 8_000)
    answered = GraphError("busy", kind=ErrorKind.TRANSIENT, http_status=500)
    assert all(1_000 <= delivery.backoff_ms(1, answered) <= 1_000 for _ in range(20))
    assert all(1_000 <= delivery.backoff_ms(3, answered) <= 4_000 for _ in range(20))
    assert all(1_000 <= delivery.backoff_ms(12, answered) <= 8_000 for _ in range(20))
    throttled = GraphError("slow down", kind=ErrorKind.THROTTLED, http_status=429, retry_after_ms=30_000)
    assert delivery.backoff_ms(1, throttled) == 30_000
    unanswered = GraphError("Facebook did not answer in time", kind=ErrorKind.TRANSIENT)
    assert delivery.backoff_ms(1, unanswered) >= delivery.ECHO_GRACE_MS


def test_sending_works_on_both_storage_engines(any_db, fake_graph: FakeGraph, broker):
    # Given a channel and a conversation on each engine in turn (SQLite is the default of a first run)
    fake_graph.add_page(PAGE_ID, "Acme", "TOKEN")
    channel = Channel.create(source_channel_id=PAGE_ID, page_token="TOKEN")
    chat = ensure_conversation(channel, PSID).conversation
    Conversation.update(last_contact_message_at=now_ms()).execute()
    # When one message is sent and another is interrupted mid-send, then echoed
    sent = accept_send(SendRequest(chat.id, {"text": "one"}))
    assert run(sent) is None
    interrupted = accept_send(SendRequest(chat.id, {"text": "two"}))
    interrupt(interrupted, started_ago_ms=10)
    our_echo(interrupted, "m_two")
    # Then both are delivered, each once
    assert reload(sent).delivery_state == reload(interrupted).delivery_state == "delivered"
    assert reload(sent).source_message_id == fake_graph.sent_messages[0]["message_id"]
    assert len(fake_graph.sent_messages) == 1
