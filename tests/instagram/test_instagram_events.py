"""Instagram events over real HTTP: signed bodies to ``POST /facebook``, the worker on real Redis and PostgreSQL,
conversations and messages read back through the API. Shapes: tests/instagram/payloads.py (Meta's
"Webhooks for Instagram Messaging", https://developers.facebook.com/docs/instagram-messaging/webhooks)."""

from __future__ import annotations

from typing import Any

from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import Channel, Contact, Conversation, Message, WebhookRequest, stable_id
from tests.fake_graph import FakeGraph
from tests.instagram import payloads as ig
from tests.instagram.conftest import stored
from tests.instagram.payloads import ACCOUNT_ID, IGSID, TIMESTAMP
from tests.support import wait_until


def conversation_of(api, igsid: str = IGSID) -> dict[str, Any]:
    data = api.post("/conversations.list", json={}).json()["data"]
    [conversation] = [c for c in data if c["id"] == stable_id("conversation", c["channel"]["id"], igsid)]
    return conversation


def messages_of(api, conversation_id: str) -> list[dict[str, Any]]:
    return api.post("/messages.list", json={"conversation_id": conversation_id}).json()["data"]


def outbound(channel: Channel, mid: str | None, text: str, sent_at: int, igsid: str = IGSID) -> Message:
    """A message the account sent earlier, stored as the send actor leaves it."""
    ref = ensure_conversation(channel, igsid)
    message_id = f"00000000-0000-4000-8000-{sent_at % 10**12:012d}"
    insert_message(
        ref.conversation,
        message_id=message_id,
        source_message_id=mid,
        content={"text": text},
        from_contact=False,
        sender_id=ACCOUNT_ID,
        sent_at=sent_at,
        delivery_state="delivered",
    )
    return Message.get_by_id(message_id)


def test_a_text_message_opens_an_instagram_conversation(api, worker, instagram_channel, deliver):
    # When a customer writes to the account
    deliver(ig.entry(ig.text("m_first", "Is the red one in stock?")))

    # Then the conversation and the message are there, on the Instagram channel, marked instagram
    message = stored("m_first")
    conversation = conversation_of(api)
    assert conversation["channel"]["source"] == "instagram"
    assert conversation["channel"]["id"] == instagram_channel.id
    assert conversation["unread_message_count"] == 1
    [shown] = messages_of(api, conversation["id"])
    assert shown["id"] == message.id
    assert shown["source"] == "instagram"
    assert shown["from_contact"] is True and shown["delivery_state"] == "delivered"
    assert shown["sender"] == {"id": IGSID}
    assert shown["content"] == ig.text("m_first", "Is the red one in stock?")
    assert conversation["last_message"]["source"] == "instagram"


def test_every_kind_of_attachment_is_kept_in_the_content_and_the_media_settle(
    api, worker, instagram_channel, deliver, fake_graph: FakeGraph
):
    # Given files on Meta's CDN for each kind Instagram sends
    kinds = ["image", "video", "audio", "file", "share", "story_mention", "ig_reel", "reel", "ig_post"]
    types = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mp4", "ig_reel": "video/mp4"}
    urls = {
        kind: fake_graph.add_file(f"/ig_messaging_cdn/{kind}", kind.encode() * 100, types.get(kind, "video/mp4"))
        for kind in kinds
    }

    # When a customer sends them in one message
    deliver(ig.entry(ig.with_attachments("m_media", *(ig.attachment(kind, urls[kind]) for kind in kinds))))

    # Then the message keeps them as sent, and every one but the story mention is kept in the media store
    message = stored("m_media")
    assert [a["type"] for a in message.content["message"]["attachments"]] == kinds
    media = wait_until(
        lambda: (m := Message.get_by_id(message.id).metadata.get("media")) and len(m) == len(kinds) and all(m) and m,
        timeout=20,
        message="the media were not settled",
    )
    for kind, entry in zip(kinds, media, strict=True):
        if kind == "story_mention":
            assert entry == {"type": "story_mention", "stored": False}
        else:
            assert (entry["type"], entry["size"]) == (kind, len(kind) * 100), entry
            assert entry["url"].startswith("http")
    assert fake_graph.file_fetches(urls["story_mention"]) == 0


def test_replies_to_a_story_and_to_a_message_are_kept_as_received(api, worker, instagram_channel, deliver):
    story = ig.story_reply("m_story_reply", "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1")
    inline = ig.inline_reply("m_inline", "m_story_reply")

    deliver(ig.entry(story, inline))

    assert stored("m_story_reply").content["message"]["reply_to"] == {
        "story": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1", "id": "17887498072083520"}
    }
    assert stored("m_inline").content["message"]["reply_to"] == {"mid": "m_story_reply"}


def test_an_unsent_message_keeps_its_content_and_says_when_it_was_deleted(api, worker, instagram_channel, deliver):
    deliver(ig.entry(ig.text("m_oops", "my card number is ...")))
    message = stored("m_oops")

    deliver(ig.entry(ig.deleted("m_oops", timestamp=TIMESTAMP + 60_000)))

    wait_until(lambda: "deleted_at" in Message.get_by_id(message.id).metadata, message="not marked deleted")
    shown = api.post("/messages.info", json={"message_id": message.id}).json()
    assert shown["metadata"]["deleted_at"] == "2024-06-10T12:45:15.123Z"
    assert shown["content"] == ig.text("m_oops", "my card number is ...")
    assert Message.select().count() == 1


def test_an_unsend_that_arrives_before_its_message_waits_for_it(api, worker, instagram_channel, deliver):
    deliver(ig.entry(ig.deleted("m_late")))
    deferred = WebhookRequest.select().where(WebhookRequest.generation == 1)
    wait_until(deferred.exists, message="the unsend did not wait")

    deliver(ig.entry(ig.text("m_late", "typo")))

    message = stored("m_late")
    wait_until(lambda: "deleted_at" in Message.get_by_id(message.id).metadata, timeout=15, message="not deleted")


def test_reactions_set_and_remove_the_decoded_emoji(api, worker, instagram_channel, deliver):
    deliver(ig.entry(ig.text("m_liked")))
    message = stored("m_liked")

    deliver(ig.entry(ig.reaction("m_liked", timestamp=TIMESTAMP + 2_000)))
    wait_until(lambda: "reaction" in Message.get_by_id(message.id).metadata, message="no reaction")
    assert Message.get_by_id(message.id).metadata["reaction"] == {
        "emoji": "\u2764\ufe0f",
        "sent_at": "2024-06-10T12:44:17.123Z",
    }

    deliver(ig.entry(ig.reaction("m_liked", "unreact", timestamp=TIMESTAMP + 3_000)))
    wait_until(lambda: "reaction" not in Message.get_by_id(message.id).metadata, message="reaction not removed")


def test_a_read_marks_that_outbound_message_and_the_earlier_ones(api, worker, instagram_channel, deliver):
    # Given three messages the account sent, and the customer's read of the second
    first = outbound(instagram_channel, "m_out_1", "one", TIMESTAMP - 3_000)
    second = outbound(instagram_channel, "m_out_2", "two", TIMESTAMP - 2_000)
    third = outbound(instagram_channel, "m_out_3", "three", TIMESTAMP - 1_000)

    deliver(ig.entry(ig.seen("m_out_2", timestamp=TIMESTAMP + 5_000)))

    # Then the second and the first are read, at the read's time, and the third is not
    wait_until(lambda: "read_at" in Message.get_by_id(second.id).metadata, message="not read")
    assert Message.get_by_id(first.id).metadata["read_at"] == "2024-06-10T12:44:20.123Z"
    assert Message.get_by_id(second.id).metadata["read_at"] == "2024-06-10T12:44:20.123Z"
    assert "read_at" not in Message.get_by_id(third.id).metadata


def test_a_postback_is_a_message_with_its_payload(api, worker, instagram_channel, deliver):
    deliver(ig.entry(ig.postback("m_icebreaker", "Track my order", "TRACK_ORDER")))

    message = stored("m_icebreaker")
    assert message.from_contact is True
    assert message.metadata == {"postback": {"payload": "TRACK_ORDER", "title": "Track my order"}}


def test_an_igme_referral_sets_the_conversations_referral(api, worker, instagram_channel, deliver):
    deliver(ig.entry(ig.referral("summer_drop")))

    conversation = wait_until(
        lambda: Conversation.get_or_none(Conversation.channel == instagram_channel.id), message="no conversation"
    )
    wait_until(lambda: Conversation.get_by_id(conversation.id).metadata.get("referral"), message="no referral")
    shown = conversation_of(api)
    assert shown["last_message"] is None
    assert shown["metadata"]["referral"] == {
        "ref": "summer_drop",
        "source": ig.REFERRAL_SOURCE,
        "type": "OPEN_THREAD",
        "received_at": "2024-06-10T12:44:15.123Z",
    }


def test_an_echo_of_a_message_written_in_the_instagram_app_is_the_accounts_message(
    api, worker, instagram_channel, deliver
):
    deliver(ig.entry(ig.text("m_question")))
    stored("m_question")

    deliver(ig.entry(ig.echo("m_from_the_app", "Yes, size M is in stock")))

    message = stored("m_from_the_app")
    assert message.from_contact is False
    assert message.sender_id == ACCOUNT_ID
    assert message.delivery_state == "delivered"
    assert Conversation.get().unread_message_count == 1


def test_the_echo_of_our_own_send_creates_no_second_message(api, worker, instagram_channel, deliver):
    ours = outbound(instagram_channel, "m_ours", "Thanks!", TIMESTAMP)

    deliver(ig.entry(ig.echo("m_ours", "Thanks!")))

    wait_until(lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).exists())
    assert [m.id for m in Message.select()] == [ours.id]


def test_redelivered_bodies_create_nothing_twice(api, worker, instagram_channel, deliver):
    # Given a body with a message, a postback, an echo and a reaction, delivered three times
    body = ig.entry(
        ig.text("m_once"), ig.postback("m_pb_once"), ig.echo("m_echo_once", "ok"), ig.reaction("m_once")
    )
    for _ in range(3):
        deliver(body)

    # Then each message exists once, and the contact once
    wait_until(
        lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null()).count() == 0,
        message="requests not processed",
    )
    stored("m_once")
    assert sorted(m.source_message_id for m in Message.select()) == ["m_echo_once", "m_once", "m_pb_once"]
    assert Contact.select().count() == 1
    assert Conversation.get().unread_message_count == 2


def test_events_of_an_account_that_is_not_connected_produce_nothing(api, worker, linked_page, deliver, db):
    deliver(ig.entry(ig.text("m_nobody")))

    wait_until(lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).exists())
    assert Message.select().count() == 0
    assert WebhookRequest.select().count() == 1  # kept


def test_events_of_a_disconnected_account_produce_nothing(api, worker, instagram_channel, deliver):
    Channel.update(connected=False).where(Channel.id == instagram_channel.id).execute()

    deliver(ig.entry(ig.text("m_after_disconnect")))

    wait_until(lambda: WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).exists())
    assert Message.select().count() == 0
