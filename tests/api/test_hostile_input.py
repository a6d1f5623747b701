"""Hostile or broken bodies get a 400 that names the problem and change nothing; lists stay readable."""

from __future__ import annotations

import base64
import json

import pytest

from airy_actors.conversations import ensure_conversation
from airy_actors.models import Channel, Conversation, Message
from airy_actors.timestamps import now_ms


@pytest.fixture
def conversation(db) -> Conversation:
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="TOKEN")
    ref = ensure_conversation(channel, "2001")
    Conversation.update(last_contact_message_at=now_ms()).where(Conversation.id == ref.conversation.id).execute()
    return ref.conversation


def send(api, raw: bytes):
    return api.post("/messages.send", content=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('{"text": NaN}', "NaN"),
        ('{"text": Infinity}', "Infinity"),
        ('{"text": -Infinity}', "Infinity"),
        ('{"text": "cut \\ud800 here"}', "surrogate"),
        ('{"x": 1e400}', "infinity"),
    ],
)
def test_a_send_with_what_json_cannot_hold_is_refused_and_stores_nothing(api, conversation, text, named):
    raw = f'{{"conversation_id": "{conversation.id}", "message": {text}}}'.encode()
    answer = send(api, raw)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["message"]
    assert Message.select().count() == 0
    # And every read of the conversation still answers
    assert api.post("/conversations.list", json={}).status_code == 200
    assert api.post("/messages.list", json={"conversation_id": conversation.id}).status_code == 200


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_nesting_deeper_than_64_levels_is_refused(api, conversation, depth):
    nested = "[" * depth + "]" * depth
    raw = f'{{"conversation_id": "{conversation.id}", "message": {{"text": "x", "n": {nested}}}}}'.encode()
    answer = send(api, raw)
    assert answer.status_code == 400 and "64" in answer.json()["message"], answer.text
    assert Message.select().count() == 0


def test_nesting_of_64_levels_is_read(api, conversation):
    nested = "[" * 60 + "]" * 60
    raw = f'{{"conversation_id": "{conversation.id}", "message": {{"text": "x", "metadata": "m"}}, "n": {nested}}}'
    assert send(api, raw.encode()).status_code == 200


def test_a_lone_surrogate_fails_only_its_own_send_among_concurrent_ones(api, conversation):
    from concurrent.futures import ThreadPoolExecutor

    good = json.dumps({"conversation_id": conversation.id, "message": {"text": "fine"}}).encode()
    bad = f'{{"conversation_id": "{conversation.id}", "message": {{"text": "\\udc00"}}}}'.encode()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda raw: send(api, raw).status_code, [good, bad] * 20))
    assert answers == [200, 400] * 20
    assert Message.select().count() == 20


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b'{"d":"next","k":[{"a":1},"x"]}').decode(),
        base64.urlsafe_b64encode(b'{"d":"next","k":[100000000000000000000000000000,"x"]}').decode(),
        base64.urlsafe_b64encode(b'{"d":"prev","k":[1,' + b"1" * 5000 + b"]}").decode(),
        "not base64 at all!",
        "e30",
    ],
)
def test_forged_cursors_are_400_naming_the_cursor(api, conversation, cursor):
    for endpoint, body in (
        ("/conversations.list", {}),
        ("/messages.list", {"conversation_id": conversation.id}),
        ("/events.failed", {}),
    ):
        answer = api.post(endpoint, json={**body, "cursor": cursor})
        assert answer.status_code == 400 and "cursor" in answer.json()["message"], (endpoint, answer.text)


def test_an_empty_cursor_is_the_first_page_and_a_huge_page_size_is_clamped(api, conversation):
    answer = api.post("/conversations.list", json={"cursor": "", "page_size": 10**30})
    assert answer.status_code == 200, answer.text
    assert answer.json()["response_metadata"]["total"] == 1
    assert api.post("/conversations.list", json={"page_size": 0}).status_code == 400
