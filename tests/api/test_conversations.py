"""Reading what arrived: conversations and messages, with SPEC section 2's pagination."""

from __future__ import annotations

import pytest

from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import Channel, Contact, Conversation, Message, stable_id


@pytest.fixture
def channel(db) -> Channel:
    return Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")


def add_messages(channel: Channel, psid: str, count: int, start: int = 1_700_000_000_000) -> Conversation:
    ref = ensure_conversation(channel, psid)
    for index in range(count):
        insert_message(
            ref.conversation,
            message_id=stable_id(psid, str(index)),
            source_message_id=f"m_{psid}_{index}",
            content={"message": {"text": f"#{index}"}},
            from_contact=True,
            sender_id=psid,
            sent_at=start + index * 1000,
            delivery_state="delivered",
        )
    return Conversation.get_by_id(ref.conversation.id)


def walk(api, path: str, body: dict, direction: str = "next_cursor") -> list[dict]:
    pages, cursor = [], None
    while True:
        page = api.post(path, json={**body, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(page)
        cursor = page["response_metadata"][direction]
        if not cursor:
            return pages


def test_messages_are_listed_newest_first_across_pages(api, channel):
    conversation = add_messages(channel, "2001", 45)
    pages = walk(api, "/messages.list", {"conversation_id": conversation.id, "page_size": 20})
    texts = [m["content"]["message"]["text"] for page in pages for m in page["data"]]
    assert texts == [f"#{i}" for i in range(44, -1, -1)]
    assert [len(p["data"]) for p in pages] == [20, 20, 5]
    assert pages[0]["response_metadata"]["previous_cursor"] == ""
    assert pages[0]["response_metadata"]["total"] == 45 and pages[0]["response_metadata"]["filtered_total"] == 45


def test_previous_cursor_of_page_two_leads_back_to_page_one(api, channel):
    conversation = add_messages(channel, "2001", 30)
    first = api.post("/messages.list", json={"conversation_id": conversation.id, "page_size": 10}).json()
    second = api.post(
        "/messages.list",
        json={"conversation_id": conversation.id, "page_size": 10, "cursor": first["response_metadata"]["next_cursor"]},
    ).json()
    back = api.post(
        "/messages.list",
        json={
            "conversation_id": conversation.id,
            "page_size": 10,
            "cursor": second["response_metadata"]["previous_cursor"],
        },
    ).json()
    assert back["data"] == first["data"]
    assert back["response_metadata"]["previous_cursor"] == ""
    assert back["response_metadata"]["next_cursor"]


def test_new_messages_do_not_shift_the_next_page(api, channel):
    conversation = add_messages(channel, "2001", 10)
    first = api.post("/messages.list", json={"conversation_id": conversation.id, "page_size": 5}).json()
    add_messages(channel, "2001", 0)
    insert_message(
        conversation,
        message_id="late",
        source_message_id="m_late",
        content={},
        from_contact=True,
        sender_id="2001",
        sent_at=1_800_000_000_000,
        delivery_state="delivered",
    )
    second = api.post(
        "/messages.list",
        json={"conversation_id": conversation.id, "page_size": 5, "cursor": first["response_metadata"]["next_cursor"]},
    ).json()
    assert [m["content"]["message"]["text"] for m in second["data"]] == ["#4", "#3", "#2", "#1", "#0"]


@pytest.mark.parametrize(("page_size", "expected"), [(None, 20), (100, 100), (1000, 100), (1, 1)])
def test_page_size_defaults_to_20_and_is_clamped_to_100(api, channel, page_size, expected):
    conversation = add_messages(channel, "2001", 120)
    body = {"conversation_id": conversation.id, **({"page_size": page_size} if page_size else {})}
    assert len(api.post("/messages.list", json=body).json()["data"]) == expected


@pytest.mark.parametrize("page_size", [0, -1, "10", 1.5, True])
def test_page_size_that_is_not_a_positive_integer_is_a_bad_request(api, channel, page_size):
    conversation = add_messages(channel, "2001", 1)
    answer = api.post("/messages.list", json={"conversation_id": conversation.id, "page_size": page_size})
    assert answer.status_code == 400 and "page_size" in answer.json()["message"]


@pytest.mark.parametrize("cursor", ["garbage", "eyJkIjoibmV4dCJ9", 5])
def test_a_cursor_this_api_did_not_make_is_a_bad_request(api, channel, cursor):
    conversation = add_messages(channel, "2001", 1)
    answer = api.post("/messages.list", json={"conversation_id": conversation.id, "cursor": cursor})
    assert answer.status_code == 400 and "cursor" in answer.json()["message"]


def test_conversations_are_listed_by_newest_activity_with_filters(api, channel):
    other = Channel.create(source_channel_id="1002", name="Other", page_token="T")
    add_messages(channel, "2001", 1, start=1_700_000_000_000)
    add_messages(channel, "2002", 1, start=1_700_000_500_000)
    add_messages(other, "2003", 1, start=1_700_000_200_000)
    Contact.update(display_name="Grace Hopper").where(Contact.source_contact_id == "2002").execute()

    listing = api.post("/conversations.list", json={}).json()
    assert [c["contact"]["display_name"] for c in listing["data"]] == [
        "Grace Hopper",
        "Facebook user 2003",
        "Facebook user 2001",
    ]
    by_channel = api.post("/conversations.list", json={"filters": {"channel_id": other.id}}).json()
    assert [c["channel"]["id"] for c in by_channel["data"]] == [other.id]
    assert by_channel["response_metadata"] | {} == {
        "previous_cursor": "",
        "next_cursor": "",
        "filtered_total": 1,
        "total": 3,
    }
    by_name = api.post("/conversations.list", json={"filters": {"display_name": "Grace"}}).json()
    assert [c["contact"]["display_name"] for c in by_name["data"]] == ["Grace Hopper"]


def test_conversation_info_shows_contact_channel_last_message_and_unread(api, channel):
    conversation = add_messages(channel, "2001", 3)
    info = api.post("/conversations.info", json={"conversation_id": conversation.id}).json()
    assert info["id"] == conversation.id
    assert info["contact"] == {"display_name": "Facebook user 2001", "avatar_url": None}
    assert info["channel"]["id"] == channel.id and "page_token" not in info["channel"]
    assert info["last_message"]["content"] == {"message": {"text": "#2"}}
    assert info["unread_message_count"] == 3
    assert info["created_at"].endswith("Z")


def test_reading_a_conversation_resets_its_unread_count(api, channel):
    conversation = add_messages(channel, "2001", 3)
    answer = api.post("/conversations.read", json={"conversation_id": conversation.id})
    assert answer.status_code == 202
    assert (
        api.post("/conversations.info", json={"conversation_id": conversation.id}).json()["unread_message_count"] == 0
    )
    add_messages(channel, "2001", 0)
    insert_message(
        conversation,
        message_id="next",
        source_message_id="m_next",
        content={},
        from_contact=True,
        sender_id="2001",
        sent_at=1_800_000_000_000,
        delivery_state="delivered",
    )
    assert Conversation.get_by_id(conversation.id).unread_message_count == 1


def test_message_info_shows_one_message(api, channel):
    conversation = add_messages(channel, "2001", 1)
    message = Message.get(Message.conversation == conversation.id)
    info = api.post("/messages.info", json={"message_id": message.id}).json()
    assert info == {
        "id": message.id,
        "content": {"message": {"text": "#0"}},
        "delivery_state": "delivered",
        "from_contact": True,
        "sender": {"id": "2001"},
        "source": "facebook",
        "sent_at": "2023-11-14T22:13:20.000Z",
        "metadata": {},
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/conversations.info", "conversation_id"),
        ("/conversations.read", "conversation_id"),
        ("/messages.list", "conversation_id"),
        ("/messages.info", "message_id"),
    ],
)
def test_unknown_ids_are_not_found(api, channel, path, field):
    answer = api.post(path, json={field: "00000000-0000-0000-0000-000000000000"})
    assert answer.status_code == 404
    assert "does not exist" in answer.json()["message"]
