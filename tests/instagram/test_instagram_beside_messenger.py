"""One page with both a Messenger channel (the page) and an Instagram channel (its linked account), receiving
Messenger and Instagram batches interleaved: each event reaches its own channel, nothing crosses over."""

from __future__ import annotations

import json
import threading

from airy_actors.models import Contact, Conversation, Message, WebhookRequest
from tests.instagram import payloads as ig
from tests.instagram.payloads import ACCOUNT_ID, PAGE_ID
from tests.support import entry, sign, text_message, wait_until, webhook_body

ROUNDS = 12
PER_BATCH = 5


def messenger_batch(round_: int) -> bytes:
    items = [text_message(PAGE_ID, f"2{n:03d}", f"m_fb_{round_}_{n}", "hi on Messenger") for n in range(PER_BATCH)]
    return webhook_body(entry(PAGE_ID, *items))


def instagram_batch(round_: int) -> bytes:
    items = [ig.text(f"m_ig_{round_}_{n}", "hi on Instagram", igsid=f"68{n:03d}") for n in range(PER_BATCH)]
    return json.dumps(ig.body(ig.entry(*items))).encode()


def test_interleaved_batches_each_reach_their_own_channel(api, worker, messenger_channel, instagram_channel):
    # Given a Messenger and an Instagram batch posted in turns by two clients at once
    bodies = [body for round_ in range(ROUNDS) for body in (messenger_batch(round_), instagram_batch(round_))]
    failures: list[int] = []

    def post(chunk: list[bytes]) -> None:
        for body in chunk:
            status = api.post("/facebook", content=body, headers=sign(body)).status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=post, args=(bodies[start::2],)) for start in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    # Then every message is stored once, on the channel of its platform
    total = 2 * ROUNDS * PER_BATCH
    wait_until(lambda: Message.select().count() == total, timeout=30, message="not every message was stored")
    for message in Message.select():
        expected = messenger_channel.id if message.source_message_id.startswith("m_fb_") else instagram_channel.id
        assert message.channel_id == expected, message.source_message_id
    # And each conversation, each contact, belongs to one channel, with the messages of its contact only
    for conversation in Conversation.select():
        contact = Contact.get_by_id(conversation.contact_id)
        assert contact.channel_id == conversation.channel_id
        senders = {m.sender_id for m in Message.select().where(Message.conversation == conversation.id)}
        assert senders == {contact.source_contact_id}
    assert Conversation.select().where(Conversation.channel == messenger_channel.id).count() == PER_BATCH
    assert Conversation.select().where(Conversation.channel == instagram_channel.id).count() == PER_BATCH
    # And the API shows each platform's messages with their source
    listed = api.post("/conversations.list", json={"page_size": 100}).json()["data"]
    texts = {"facebook": "hi on Messenger", "instagram": "hi on Instagram"}
    for conversation in listed:
        source = conversation["channel"]["source"]
        assert conversation["last_message"]["source"] == source
        assert conversation["last_message"]["content"]["message"]["text"] == texts[source]
    assert not WebhookRequest.select().where(WebhookRequest.processed_at.is_null()).exists()


def test_an_event_of_one_platform_never_reaches_the_other_platforms_channel(api, worker, messenger_channel, deliver):
    # Given only the page's Messenger channel, and an Instagram body whose entry id happens to be the page id
    deliver(ig.entry(ig.text("m_misaddressed"), account_id=PAGE_ID))
    # And a Messenger body addressed to the account id
    body = webhook_body(entry(ACCOUNT_ID, text_message(ACCOUNT_ID, "2001", "m_fb_misaddressed", "hi")))
    assert api.post("/facebook", content=body, headers=sign(body)).status_code == 200

    # Then neither produces anything: an entry id names a channel of its own platform only
    wait_until(
        lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() == 2,
        message="requests not processed",
    )
    assert Message.select().count() == 0
