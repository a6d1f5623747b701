"""``POST /messages.send`` over real HTTP: what it accepts, what it refuses before Facebook is asked."""

from __future__ import annotations

import pytest

from airy_actors.models import Channel, Message
from tests.fake_graph import FakeGraph
from tests.sending.conftest import HOUR_MS, PAGE_ID
from tests.sending.sends import info, send, wait_for_state

TEXT = {"text": "Hello from Acme"}


def test_a_send_answers_at_once_with_the_pending_message(api, conversation, fake_graph: FakeGraph):
    # Given a contact who wrote a minute ago, and no worker running
    chat = conversation()
    # When the page answers
    answer = send(api, chat.id, TEXT)
    # Then the message is stored pending, as sent, from the page, and Facebook has not been called yet
    assert answer.status_code == 200, answer.text
    message = answer.json()
    assert message["delivery_state"] == "pending"
    assert message["content"] == TEXT
    assert message["from_contact"] is False
    assert message["sender"] == {"id": PAGE_ID}
    assert message["source"] == "facebook"
    assert message["sent_at"].endswith("Z")
    assert info(api, message["id"]) == message
    assert fake_graph.sent_messages == []
    listed = api.post("/messages.list", json={"conversation_id": chat.id}).json()
    assert [m["id"] for m in listed["data"]] == [message["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": TEXT}, "conversation_id"),
        ({"conversation_id": 42, "message": TEXT}, "conversation_id"),
        ({"conversation_id": "CHAT"}, "message"),
        ({"conversation_id": "CHAT", "message": "hello"}, "message"),
        ({"conversation_id": "CHAT", "message": ["hello"]}, "message"),
        ({"conversation_id": "CHAT", "message": {}}, "message"),
        ({"conversation_id": "CHAT", "message": TEXT, "messaging_type": "SHOUT"}, "messaging_type"),
        ({"conversation_id": "CHAT", "message": TEXT, "messaging_type": 1}, "messaging_type"),
        ({"conversation_id": "CHAT", "message": TEXT, "tag": 7}, "tag"),
        ({"conversation_id": "CHAT", "message": TEXT, "tag": ""}, "tag"),
        ({"conversation_id": "CHAT", "message": TEXT, "messaging_type": "MESSAGE_TAG"}, "tag"),
        ({"conversation_id": "CHAT", "message": TEXT, "messaging_type": "RESPONSE", "tag": "HUMAN_AGENT"}, "tag"),
    ],
)
def test_a_malformed_body_is_400_naming_the_field(api, conversation, fake_graph: FakeGraph, body, field):
    chat = conversation()
    body = {key: (chat.id if value == "CHAT" else value) for key, value in body.items()}
    answer = api.post("/messages.send", json=body)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]
    assert Message.select().count() == 0
    assert fake_graph.requests == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_400(api, raw):
    answer = api.post("/messages.send", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["message"]


def test_an_unknown_conversation_is_404(api, channel):
    answer = send(api, "7d3c3f2e-0000-4000-8000-000000000000", TEXT)
    assert answer.status_code == 404
    assert "7d3c3f2e-0000-4000-8000-000000000000" in answer.json()["message"]


def test_sending_into_a_disconnected_channel_is_refused(api, conversation, channel, fake_graph: FakeGraph):
    chat = conversation()
    Channel.update(connected=False, page_token=None).where(Channel.id == channel.id).execute()
    answer = send(api, chat.id, TEXT)
    assert answer.status_code == 400
    assert "disconnected" in answer.json()["message"]
    assert Message.select().count() == 0
    assert fake_graph.requests == []


def test_outside_the_24_hour_window_a_send_is_refused_saying_when_it_closed(api, conversation, fake_graph):
    # Given a contact whose last message is 25 hours old
    chat = conversation(wrote_ago_ms=25 * HOUR_MS)
    # When the page answers without a tag
    answer = send(api, chat.id, TEXT)
    # Then it is refused before Facebook is asked, saying the window closed and when
    assert answer.status_code == 400
    reason = answer.json()["message"]
    assert "window closed at" in reason and "24 hours" in reason
    assert "T" in reason.split("window closed at ")[1] and "Z" in reason
    assert Message.select().count() == 0
    assert fake_graph.requests == []


def test_a_contact_who_never_wrote_cannot_be_messaged(api, conversation, fake_graph):
    chat = conversation(wrote_ago_ms=None)
    answer = send(api, chat.id, TEXT)
    assert answer.status_code == 400
    assert "window" in answer.json()["message"]
    assert fake_graph.requests == []


def test_human_agent_answers_up_to_7_days_after_the_contacts_last_message(api, worker, conversation, fake_graph):
    # Given a contact whose last message is 6 days old
    chat = conversation(wrote_ago_ms=6 * 24 * HOUR_MS)
    # When a human agent answers with the HUMAN_AGENT tag
    answer = send(api, chat.id, TEXT, tag="HUMAN_AGENT")
    # Then the message is accepted and sent as a tagged message
    assert answer.status_code == 200, answer.text
    wait_for_state(api, answer.json()["id"], "delivered")
    [sent] = fake_graph.sent_messages
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_human_agent_is_refused_after_7_days(api, conversation, fake_graph):
    chat = conversation(wrote_ago_ms=8 * 24 * HOUR_MS)
    answer = send(api, chat.id, TEXT, messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert answer.status_code == 400
    reason = answer.json()["message"]
    assert "window closed at" in reason and "7 days" in reason
    assert fake_graph.requests == []


def test_other_tags_do_not_open_the_window(api, conversation, fake_graph):
    chat = conversation(wrote_ago_ms=25 * HOUR_MS)
    answer = send(api, chat.id, TEXT, tag="ACCOUNT_UPDATE")
    assert answer.status_code == 400
    assert "HUMAN_AGENT" in answer.json()["message"]
