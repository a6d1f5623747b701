"""How stored webhook requests become conversations and messages, on PostgreSQL and SQLite."""

from __future__ import annotations

import json

import pytest

from airy_actors.ingestion import ingest_webhook_request
from airy_actors.models import Channel, Contact, Conversation, Message, WebhookRequest
from airy_actors.webhook_requests import stale_webhook_requests
from tests.support import (
    APP_ID,
    echo,
    entry,
    message_edit,
    postback,
    reaction,
    receipt,
    store_webhook_request,
    text_message,
    webhook_body,
)

PAGE = "1001"
PSID = "2001"


@pytest.fixture
def channel(any_db) -> Channel:
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token="PAGE-TOKEN")


def ingest(*entries: dict) -> None:
    event_id, _ = store_webhook_request(webhook_body(*entries))
    ingest_webhook_request(event_id, app_id=APP_ID)


def messages() -> list[Message]:
    return list(Message.select().order_by(Message.sent_at, Message.id))


def test_first_message_from_a_contact_creates_the_conversation(channel):
    # Given a connected page, When a contact writes to it
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello", timestamp=1_700_000_000_123)))
    # Then there is one conversation with one delivered message from the contact
    conversation = Conversation.get()
    [message] = messages()
    assert conversation.contact.source_contact_id == PSID
    assert message.conversation_id == conversation.id
    assert (message.from_contact, message.delivery_state, message.sender_id) == (True, "delivered", PSID)
    assert message.sent_at == 1_700_000_000_123
    assert message.content == text_message(PAGE, PSID, "m_1", "hello", timestamp=1_700_000_000_123)
    assert conversation.unread_message_count == 1
    assert conversation.last_message_id == message.id


def test_a_text_cut_inside_an_emoji_is_stored_with_a_replacement_character(channel):
    # Given a request whose first text ends with half of a surrogate pair, and a second text with a whole emoji
    cut = text_message(PAGE, PSID, "m_1", "see you \ud83d", timestamp=1_700_000_000_001)
    whole = text_message(PAGE, PSID, "m_2", "see you \U0001f600", timestamp=1_700_000_000_002)
    body = webhook_body(entry(PAGE, cut, whole))
    assert b"\\ud83d" in body  # JSON as Facebook writes it: non-ASCII escaped
    # When it is ingested, Then both are messages; the lone half is U+FFFD, the whole emoji is kept
    event_id, _ = store_webhook_request(body)
    ingest_webhook_request(event_id, app_id=APP_ID)
    assert [message.content["message"]["text"] for message in messages()] == ["see you \ufffd", "see you \U0001f600"]


def test_redelivered_event_creates_no_second_message(channel):
    event = text_message(PAGE, PSID, "m_1", "hello")
    ingest(entry(PAGE, event))
    # When Facebook delivers the same event again, inside a different batch
    ingest(entry(PAGE, event, text_message(PAGE, PSID, "m_2", "again", timestamp=1_700_000_000_500)))
    assert [m.source_message_id for m in messages()] == ["m_1", "m_2"]
    assert Conversation.get().unread_message_count == 2


def test_the_same_request_twice_is_stored_once(channel):
    body = webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")))
    first, new_first = store_webhook_request(body)
    second, new_second = store_webhook_request(body)
    assert (first, new_first, new_second) == (second, True, False)


def test_a_conversation_is_one_contact_on_one_channel(channel):
    ingest(
        entry(
            PAGE,
            text_message(PAGE, PSID, "m_1", "a"),
            text_message(PAGE, "2002", "m_2", "b"),
            text_message(PAGE, PSID, "m_3", "c", timestamp=1_700_000_000_900),
        )
    )
    assert Conversation.select().count() == 2
    assert Contact.select().count() == 2
    mine = Conversation.get(Conversation.contact == Contact.get(Contact.source_contact_id == PSID))
    assert mine.unread_message_count == 2


def test_events_for_a_page_that_is_not_connected_are_kept_but_produce_nothing(channel):
    channel.connected = False
    channel.save()
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")), entry("9999", text_message("9999", PSID, "m_2", "x")))
    assert Message.select().count() == 0
    assert WebhookRequest.select().where(WebhookRequest.processed_at.is_null(False)).count() == 1


def test_echo_of_our_own_send_matches_the_sent_message(channel):
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")))
    conversation = Conversation.get()
    sent = Message.create(
        id="out-1",
        conversation=conversation,
        channel=channel,
        source_message_id="m_out",
        content={"text": "hi back"},
        from_contact=False,
        sender_id=PAGE,
        sent_at=1_700_000_000_700,
        delivery_state="pending",
    )
    ingest(entry(PAGE, echo(PAGE, PSID, "m_out", "hi back")))
    assert Message.select().count() == 2
    assert Message.get_by_id(sent.id).delivery_state == "delivered"


def test_echo_of_our_send_before_its_mid_is_known_is_deferred_not_duplicated(channel):
    ingest(entry(PAGE, echo(PAGE, PSID, "m_out", "hi back")))
    assert Message.select().count() == 0
    deferred = WebhookRequest.get(WebhookRequest.generation == 1)
    assert deferred.processed_at is None and json.loads(deferred.body)["object"] == "airy.deferred"


def test_echo_from_the_page_inbox_is_a_message_not_from_the_contact(channel):
    ingest(
        entry(
            PAGE,
            echo(PAGE, PSID, "m_inbox", "typed by a human", app_id=None),
            echo(PAGE, PSID, "m_other", "from another app", app_id="42"),
        )
    )
    inbox, other = messages()
    assert (inbox.from_contact, inbox.sender_id, other.from_contact) == (False, PAGE, False)
    assert Conversation.get().unread_message_count == 0


def test_postback_is_a_message_with_its_payload_in_metadata(channel):
    ingest(entry(PAGE, postback(PAGE, PSID, "m_pb", "GET_STARTED", "Get started")))
    [message] = messages()
    assert message.from_contact is True
    assert message.metadata == {"postback": {"payload": "GET_STARTED", "title": "Get started"}}


def test_reaction_sets_and_unreaction_removes_the_metadata(channel):
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")))
    ingest(entry(PAGE, reaction(PAGE, PSID, "m_1", "react")))
    assert Message.get().metadata["reaction"] == {"emoji": "\u2764\ufe0f", "sent_at": "2023-11-14T22:13:21.000Z"}
    ingest(entry(PAGE, reaction(PAGE, PSID, "m_1", "unreact", timestamp=1_700_000_005_000)))
    assert "reaction" not in Message.get().metadata


def test_reaction_before_its_message_is_applied_once_the_message_arrives(channel):
    ingest(entry(PAGE, reaction(PAGE, PSID, "m_1", "react")))
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")))
    deferred = WebhookRequest.get(WebhookRequest.generation == 1)
    ingest_webhook_request(deferred.id, app_id=APP_ID)
    assert Message.get().metadata["reaction"]["emoji"] == "\u2764\ufe0f"


def test_edit_replaces_the_text_and_keeps_the_previous_one(channel):
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "helo")))
    edit = message_edit(PAGE, PSID, "m_1", "hello", num_edit=1)
    ingest(entry(PAGE, edit))
    ingest(entry(PAGE, edit, text_message(PAGE, PSID, "m_2", "x")))  # redelivered within another batch
    message = Message.get(Message.source_message_id == "m_1")
    assert message.content["message"]["text"] == "hello"
    assert message.metadata["edits"] == [{"text": "helo", "edited_at": "2023-11-14T22:13:22.000Z"}]


def test_delivery_and_read_receipts_mark_our_messages_up_to_the_watermark(channel):
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello")))
    conversation = Conversation.get()
    for index, sent_at in enumerate((1_700_000_001_000, 1_700_000_009_000)):
        Message.create(
            id=f"out-{index}",
            conversation=conversation,
            channel=channel,
            source_message_id=f"m_o{index}",
            content={"text": "x"},
            from_contact=False,
            sender_id=PAGE,
            sent_at=sent_at,
            delivery_state="delivered",
        )
    ingest(
        entry(PAGE, receipt(PAGE, PSID, "delivery", 1_700_000_002_000), receipt(PAGE, PSID, "read", 1_700_000_002_000))
    )
    early, late = Message.get_by_id("out-0"), Message.get_by_id("out-1")
    assert early.metadata == {"delivered_at": "2023-11-14T22:13:22.000Z", "read_at": "2023-11-14T22:13:22.000Z"}
    assert late.metadata == {}
    assert "read_at" not in Message.get(Message.source_message_id == "m_1").metadata


def test_standby_events_are_processed_like_messaging(channel):
    ingest(entry(PAGE, text_message(PAGE, PSID, "m_sb", "while another app owns the thread"), standby=True))
    assert [m.source_message_id for m in messages()] == ["m_sb"]


def test_a_batch_of_entries_and_events_is_applied_in_one_go(channel):
    Channel.create(source_channel_id="1002", name="Other", page_token="T2")
    ingest(
        entry(PAGE, text_message(PAGE, PSID, "m_1", "a"), postback(PAGE, PSID, "m_2", "P", "T")),
        entry("1002", text_message("1002", PSID, "m_3", "b"), {"optin": {"ref": "x"}, "sender": {"id": PSID}}),
    )
    assert Message.select().count() == 3
    assert Conversation.select().count() == 2


def test_a_processed_request_is_not_applied_again(channel):
    event_id, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello"))))
    ingest_webhook_request(event_id, app_id=APP_ID)
    result = ingest_webhook_request(event_id, app_id=APP_ID)
    assert result.already_processed and Conversation.get().unread_message_count == 1


def test_unprocessed_requests_past_their_turn_are_found_by_the_sweeper(channel):
    event_id, _ = store_webhook_request(webhook_body(entry(PAGE, text_message(PAGE, PSID, "m_1", "hello"))))
    assert stale_webhook_requests() == []
    WebhookRequest.update(next_attempt_at=0).execute()
    assert stale_webhook_requests() == [event_id]
    assert stale_webhook_requests() == []  # handed out once, then left alone for a while
