"""Uploaded files sent to contacts: uploaded to Facebook once per page, then sent by attachment id."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from airy_actors.conversations import ensure_conversation
from airy_actors.media.configured import use_media_store
from airy_actors.models import Channel, Conversation, Message
from airy_actors.timestamps import now_ms
from tests.fake_graph import FakeGraph
from tests.media.conftest import StoreUnderTest
from tests.support import wait_until

PAGE = "1001"
PICTURE = os.urandom(120_000)


@pytest.fixture
def kept(media: StoreUnderTest) -> Iterator[StoreUnderTest]:
    use_media_store(media.store)
    yield media
    use_media_store(None)


@pytest.fixture
def open_conversations(db, fake_graph: FakeGraph) -> list[Conversation]:
    """Two contacts of one page, both within the messaging window."""
    fake_graph.add_page(PAGE, "Acme", token="PAGE-TOKEN")
    channel = Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")
    conversations = []
    for psid in ("2001", "2002"):
        fake_graph.add_contact(psid, "Ada", "Lovelace", "https://example.com/ada.jpg")
        ref = ensure_conversation(channel, psid)
        Conversation.update(last_contact_message_at=now_ms()).where(Conversation.id == ref.conversation.id).execute()
        conversations.append(ref.conversation)
    return conversations


def test_an_upload_sent_twice_to_one_page_is_uploaded_to_facebook_once(
    api, worker, kept, open_conversations, fake_graph: FakeGraph
):
    # Given a picture uploaded by an integrator
    uploaded = api.post("/media.upload", content=PICTURE, headers={"Content-Type": "image/jpeg"})
    assert uploaded.status_code == 200, uploaded.text
    media_id = uploaded.json()["media_id"]
    # When it is sent to two contacts of the same page
    sent = []
    for conversation in open_conversations:
        message = {"attachment": {"type": "image", "payload": {"media_id": media_id}}}
        answer = api.post("/messages.send", json={"conversation_id": conversation.id, "message": message})
        assert answer.status_code == 200, answer.text
        sent.append(answer.json()["id"])
    # Then both are delivered, and Facebook got the file once, byte-identical, reused by its attachment id
    for message_id in sent:
        wait_until(lambda m=message_id: Message.get_by_id(m).delivery_state == "delivered", timeout=15)
    [upload] = fake_graph.attachment_uploads
    assert (upload.page_id, upload.type, upload.sha256) == (PAGE, "image", hashlib.sha256(PICTURE).hexdigest())
    payloads = [body["message"]["attachment"]["payload"] for body in fake_graph.sent_messages]
    assert payloads == [{"attachment_id": upload.attachment_id}] * 2
    # And the stored message keeps what the integrator sent
    assert Message.get_by_id(sent[0]).content["attachment"]["payload"] == {"media_id": media_id}


def test_an_unknown_media_id_is_refused_before_anything_is_stored(api, kept, open_conversations):
    message = {"attachment": {"type": "image", "payload": {"media_id": "no-such-upload"}}}
    answer = api.post("/messages.send", json={"conversation_id": open_conversations[0].id, "message": message})
    assert answer.status_code == 400 and "media_id" in answer.json()["message"]
    assert Message.select().count() == 0
