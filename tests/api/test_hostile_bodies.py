"""Hostile bodies on every JSON endpoint (SPEC section 2): NaN, lone surrogates, deep nesting, huge numbers,
over-long strings, wrong types, forged cursors. Each is a 400 naming the field (or the token), never a 500,
and changes nothing; a page_size however large is clamped, and an empty cursor is the first page.

The fields come from the endpoints' own schemas (api.schemas), so a field added there is probed here too.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from airy_actors import integrations
from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import Channel, Conversation, Message
from airy_actors.timestamps import now_ms
from api.app import routes
from api.operations import operation_of
from tests.api.test_fuzz import fingerprint

SCHEMAS = {
    route.path: operation_of(route.endpoint).body
    for route in routes()
    if "POST" in (route.methods or ()) and route.path != "/facebook"
}
PAGED = sorted(
    path
    for path, schema in SCHEMAS.items()
    if any(field.name == "page_size" for field in msgspec.structs.fields(schema))
)
MESSAGE_ID = "a0000000-0000-0000-0000-000000000001"


@dataclass(frozen=True)
class Field:
    """A field of a request body: its path (``filters.channel_id``) and what msgspec knows of its type."""

    path: str
    type: msgspec.inspect.Type

    def body(self, raw_value: bytes, schema: Any = None) -> bytes:
        """A body holding ``raw_value`` (JSON text) at this field; with ``schema``, its other required fields too
        (so that the error is about this field, not a missing one)."""
        for name in reversed(self.path.split(".")):
            raw_value = b'{"' + name.encode() + b'": ' + raw_value + b"}"
        top = self.path.split(".")[0]
        others = {name: value for name, value in required_values(schema).items() if name != top} if schema else {}
        return raw_value[:-1] + b", " + json.dumps(others).encode()[1:] if others else raw_value


def required_values(schema: Any) -> dict[str, Any]:
    """Plausible values of ``schema``'s required fields."""
    plausible = {"message": {"text": "hi"}, "url": "https://hooks.example.com/x"}
    return {field.name: plausible.get(field.name, "x") for field in msgspec.structs.fields(schema) if field.required}


def _unwrapped(info: msgspec.inspect.Type) -> msgspec.inspect.Type:
    while True:
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        elif isinstance(info, msgspec.inspect.UnionType) and len(info.types) == 2:
            info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        else:
            return info


def fields_of(schema: Any, prefix: str = "") -> list[Field]:
    """Every field of ``schema``, those of nested bodies (``filters``) included."""
    found = []
    for field in msgspec.inspect.type_info(schema).fields:
        kind = _unwrapped(field.type)
        path = f"{prefix}{field.encode_name}"
        found.append(Field(path, kind))
        if isinstance(kind, msgspec.inspect.StructType):
            found += fields_of(kind.cls, f"{path}.")
    return found


def string_fields() -> list[tuple[str, Field]]:
    return [
        (path, field)
        for path, schema in SCHEMAS.items()
        for field in fields_of(schema)
        if isinstance(field.type, msgspec.inspect.StrType)
    ]


@pytest.fixture
def seeded(db, fake_graph) -> dict[str, str]:
    """A channel, a conversation whose contact just wrote, a message, a subscription."""
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")
    ref = ensure_conversation(channel, "2001")
    insert_message(
        ref.conversation,
        message_id=MESSAGE_ID,
        source_message_id="m_1",
        content={"message": {"text": "hello"}},
        from_contact=True,
        sender_id="2001",
        sent_at=now_ms(),
        delivery_state="delivered",
    )
    Conversation.update(last_contact_message_at=now_ms()).where(Conversation.id == ref.conversation.id).execute()
    subscription = integrations.subscribe(
        "https://hooks.example.com/airy", headers=None, events=None, signature_key=None
    )
    return {"channel_id": channel.id, "conversation_id": ref.conversation.id, "subscription_id": subscription["id"]}


def post(api: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    return api.post(path, content=raw, headers={"Content-Type": "application/json"})


def assert_refused(api: httpx.Client, path: str, raw: bytes, naming: str) -> str:
    """Posts ``raw``; checks a 400 whose message names ``naming``, and that nothing changed."""
    before = fingerprint()
    answer = post(api, path, raw)
    shown = raw if len(raw) < 200 else raw[:200] + b"..."
    assert answer.status_code == 400, (path, shown, answer.status_code, answer.text[:300])
    message = answer.json()["message"]
    assert naming in message, (path, shown, message)
    assert fingerprint() == before, f"{path} refused {shown!r} but changed the data"
    return message


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_any_field_are_refused_naming_the_token(api, seeded, token):
    for path, schema in SCHEMAS.items():
        for field in fields_of(schema) or [Field("", msgspec.inspect.AnyType())]:
            raw = field.body(token.encode()) if field.path else token.encode()
            assert_refused(api, path, raw, f"{token} is not allowed")


def test_a_lone_surrogate_in_any_string_field_is_refused_naming_it(api, seeded):
    for path, field in string_fields():
        for surrogate in (b'"\\ud800"', b'"cut \\ud83d"', b'"\\udfff"', b'"raw \xed\xa0\x80"'):
            message = assert_refused(api, path, field.body(surrogate), field.path)
            assert message.startswith(f"{field.path}: contains a lone surrogate"), message


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/messages.send", b'{"conversation_id": "c", "message": {"text": "\\ud800"}}', "message.text"),
        ("/messages.send", b'{"conversation_id": "c", "message": {"quick_replies": [{"t": "\\udc00"}]}}', "message"),
        ("/webhooks.subscribe", b'{"url": "https://x.org", "headers": {"X-A": "\\ud800"}}', "headers.X-A"),
        ("/webhooks.subscribe", b'{"url": "https://x.org", "events": ["\\ud800"]}', "events[0]"),
        ("/conversations.list", b'{"filters": {"display_name": "\\ud800"}}', "filters.display_name"),
    ],
)
def test_a_lone_surrogate_deep_inside_a_body_is_refused_naming_where(api, seeded, path, raw, field):
    assert assert_refused(api, path, raw, field).startswith(field)


@pytest.mark.parametrize("levels", [65, 1000, 100_000])
def test_nesting_deeper_than_64_levels_is_refused(api, seeded, levels):
    deep = b"[" * levels + b"]" * levels
    for path, schema in SCHEMAS.items():
        first = (fields_of(schema) or [Field("anything", msgspec.inspect.AnyType())])[0]
        assert_refused(api, path, first.body(deep), "64 levels")


@pytest.mark.parametrize(
    ("number", "naming"),
    [
        (b"1e400", "is out of range"),
        (b"-1e400", "is out of range"),
        (b"9" * 5000, "is out of range"),
        (str(10**30).encode(), "expected a string"),
        (str(-(2**64)).encode(), "expected a string"),
    ],
)
def test_huge_numbers_in_string_fields_are_refused_naming_the_field(api, seeded, number, naming):
    for path, field in string_fields():
        message = assert_refused(api, path, field.body(number), field.path)
        assert naming in message, (path, message)


def test_huge_numbers_inside_a_message_are_refused(api, seeded):
    for number in (b"1e400", b"9" * 5000):
        raw = b'{"conversation_id": "%s", "message": {"n": %s}}' % (seeded["conversation_id"].encode(), number)
        assert_refused(api, "/messages.send", raw, "message")
    assert Message.select().count() == 1


def test_strings_longer_than_their_column_are_refused(api, seeded):
    for path, field in string_fields():
        if field.type.max_length is None:
            continue
        too_long = json.dumps("x" * (field.type.max_length + 1)).encode()
        message = assert_refused(api, path, field.body(too_long), field.path)
        assert f"at most {field.type.max_length} characters" in message


def test_a_value_of_the_wrong_type_is_refused_naming_the_field(api, seeded):
    wrong = {
        msgspec.inspect.StrType: b"5",
        msgspec.inspect.DictType: b'"text"',
        msgspec.inspect.StructType: b"[]",
        msgspec.inspect.ListType: b"{}",
        msgspec.inspect.LiteralType: b"true",
        msgspec.inspect.RawType: b'"ten"',  # page_size
    }
    for path, schema in SCHEMAS.items():
        for field in fields_of(schema):
            assert_refused(api, path, field.body(wrong[type(field.type)], schema), field.path)


def test_unknown_fields_are_refused_naming_them(api, seeded):
    for path in SCHEMAS:
        assert_refused(api, path, b'{"colour": "red"}', "colour: is not a known field")


# --- pages ------------------------------------------------------------------------------------------------


def list_body(path: str, seeded: dict[str, str], **fields: Any) -> dict[str, Any]:
    ids = {
        "/messages.list": {"conversation_id": seeded["conversation_id"]},
        "/webhooks.deliveries": {"id": seeded["subscription_id"]},
    }
    return {**ids.get(path, {}), **fields}


def test_every_list_endpoint_is_covered():
    assert PAGED == ["/conversations.list", "/messages.list", "/webhooks.deliveries"]


@pytest.mark.parametrize("page_size", [b"101", str(10**30).encode(), b"9" * 5000], ids=["101", "10**30", "5000 digits"])
def test_a_page_size_however_large_is_clamped(api, seeded, page_size):
    for path in PAGED:
        answer = post(api, path, list_raw(path, seeded, page_size))
        assert answer.status_code == 200, (path, answer.text)
        assert len(answer.json()["data"]) <= 100


@pytest.mark.parametrize(
    "page_size",
    [b"0", b"-1", b"-" + str(10**30).encode(), b"-" + b"9" * 5000, b"1.5", b'"10"', b"true", b"[1]", b"1e400"],
)
def test_a_page_size_that_is_not_a_positive_integer_is_refused(api, seeded, page_size):
    for path in PAGED:
        assert_refused(api, path, list_raw(path, seeded, page_size), "page_size")


def list_raw(path: str, seeded: dict[str, str], page_size: bytes) -> bytes:
    return json.dumps(list_body(path, seeded, page_size="SIZE")).encode().replace(b'"SIZE"', page_size)


@pytest.mark.parametrize("cursor", ["", None])
def test_an_empty_cursor_is_the_first_page(api, seeded, cursor):
    for path in PAGED:
        first = api.post(path, json=list_body(path, seeded))
        answer = api.post(path, json=list_body(path, seeded, cursor=cursor))
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json() == first.json()


def forged(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


FORGED_CURSORS = [
    forged({"d": "next", "k": [{"a": 1}, "x"]}),
    forged({"d": "next", "k": [10**30, "x"]}),
    forged({"d": "next", "k": [-(2**63) - 1, "x"]}),
    forged({"d": "prev", "k": [1.5, "x"]}),
    forged({"d": "next", "k": [True, "x"]}),
    forged({"d": "next", "k": [1, "x" * 65]}),
    forged({"d": "next", "k": [1, "x", 3]}),
    forged({"d": "sideways", "k": [1, "x"]}),
    forged({"d": "next", "k": [1, "x"], "more": 1}),
    forged(["next", [1, "x"]]),
    base64.urlsafe_b64encode(b'{"d":"next","k":[NaN,"x"]}').decode(),
    base64.urlsafe_b64encode(b'{"d":"next","k":[1,"\\ud800"]}').decode(),
    base64.urlsafe_b64encode(b"[" * 1000).decode(),
    "garbage!",
    "eyJkIjoibmV4dCJ9",
    "x" * 513,
    "\u00e9t\u00e9",
]


@pytest.mark.parametrize("cursor", FORGED_CURSORS, ids=range(len(FORGED_CURSORS)))
def test_a_forged_cursor_is_refused_naming_it(api, seeded, cursor):
    for path in PAGED:
        assert_refused(api, path, json.dumps(list_body(path, seeded, cursor=cursor)).encode(), "cursor")


# --- a refusal changes nothing, and fails nobody else ---------------------------------------------------------


def test_a_send_with_nan_stores_nothing_and_lists_still_answer(api, seeded):
    raw = b'{"conversation_id": "%s", "message": {"text": "hi", "score": NaN}}' % seeded["conversation_id"].encode()
    assert_refused(api, "/messages.send", raw, "NaN is not allowed")
    assert Message.select().count() == 1
    listing = api.post("/conversations.list", json={})
    assert listing.status_code == 200 and listing.json()["response_metadata"]["total"] == 1
    messages = api.post("/messages.list", json={"conversation_id": seeded["conversation_id"]})
    assert messages.status_code == 200 and len(messages.json()["data"]) == 1


def test_hostile_sends_never_fail_the_good_ones_that_arrive_with_them(api, seeded):
    chat = seeded["conversation_id"].encode()
    good = [b'{"conversation_id": "%s", "message": {"text": "answer %d"}}' % (chat, n) for n in range(6)]
    hostile = [
        b'{"conversation_id": "%s", "message": {"text": "\\ud800"}}' % chat,
        b'{"conversation_id": "%s", "message": {"n": NaN}}' % chat,
        b'{"conversation_id": "%s", "message": ' % chat + b"[" * 65 + b"]" * 65 + b"}",
        b'{"conversation_id": "%s", "message": {"text": "hi"}, "tag": 1e400}' % chat,
    ]
    answers: dict[bytes, int] = {}

    def send(raw: bytes) -> None:
        answers[raw] = post(api, "/messages.send", raw).status_code

    threads = [threading.Thread(target=send, args=(raw,)) for raw in [*good, *hostile]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [answers[raw] for raw in good] == [200] * len(good)
    assert [answers[raw] for raw in hostile] == [400] * len(hostile)
    assert Message.select().count() == 1 + len(good)
