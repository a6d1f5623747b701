"""airy_actors.strict_json: the one JSON reader of every request body, strict and tolerant. No server needed."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import msgspec
import pytest

from airy_actors import strict_json
from airy_actors.errors import BadRequest
from airy_actors.strict_json import MAX_DEPTH, InvalidJSON, check_tolerant_object, loads, loads_tolerant


class Filters(msgspec.Struct, forbid_unknown_fields=True):
    channel_id: Annotated[str, msgspec.Meta(max_length=36, pattern=strict_json.TEXT_PATTERN)] | None = None


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    conversation_id: Annotated[str, msgspec.Meta(min_length=1, max_length=36, pattern=strict_json.TEXT_PATTERN)]
    kind: Literal["RESPONSE", "UPDATE"] | None = None
    size: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    filters: Filters | None = None
    message: dict[str, Any] | None = None
    events: list[str] | None = None


def nested(levels: int, inner: bytes = b"1") -> bytes:
    return b"[" * levels + inner + b"]" * levels


def refusal(raw: bytes | str, kind: Any = Any) -> str:
    with pytest.raises(BadRequest) as refused:
        loads(raw, kind)
    return refused.value.message


# --- strict ------------------------------------------------------------------------------------------------


def test_a_valid_document_is_decoded_into_its_type():
    decoded = loads(b'{"conversation_id": "c1", "message": {"text": "hi \\ud83d\\ude00"}, "size": 5}', Request)
    assert decoded == Request(conversation_id="c1", message={"text": "hi \U0001f600"}, size=5)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_naming_the_token(token):
    message = refusal(f'{{"conversation_id": "c1", "message": {{"score": {token}}}}}'.encode(), Request)
    assert message == f"body is not valid JSON: {token} is not allowed"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"conversation_id": "\\ud800"}', "conversation_id"),
        (b'{"conversation_id": "c1", "message": {"text": "cut \\ud83d"}}', "message.text"),
        (b'{"conversation_id": "c1", "message": {"text": "\\udc00 alone"}}', "message.text"),
        (b'{"conversation_id": "c1", "events": ["ok", "\\udfff"]}', "events[1]"),
        (b'{"conversation_id": "c1", "message": {"text": "raw \xed\xa0\x80"}}', "message.text"),
        (b'{"conversation_id": "c1", "filters": {"channel_id": "\\ud800"}}', "filters.channel_id"),
        (b'{"conversation_id": "c1", "message": {"\\ud800": 1}}', "message (the name of one of its fields)"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(raw, field):
    assert refusal(raw, Request) == f"{field}: contains a lone surrogate, which is not valid Unicode"


def test_a_lone_surrogate_in_a_str_document_is_refused_too():
    assert refusal('{"conversation_id": "\ud800"}', Request).startswith("conversation_id: ")


def test_nesting_deeper_than_64_levels_is_refused():
    assert loads(nested(MAX_DEPTH)) is not None
    for levels in (MAX_DEPTH + 1, 1000, 200_000):
        message = refusal(nested(levels))
        assert message == "body is not valid JSON: it nests arrays and objects deeper than 64 levels"
    objects = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    assert "64 levels" in refusal(objects)


@pytest.mark.parametrize(
    "text",
    [
        '"]]]]]]]]]]][[[[[[[[[[[[[[[["',  # brackets in strings nest nothing
        '"\\\\\\"[[[["',  # an escaped backslash, then an escaped quote, then brackets: all one string
        '"' + "[" * 200 + '"',
    ],
)
def test_brackets_inside_strings_do_not_count_as_nesting(text):
    raw = nested(MAX_DEPTH - 1, f"[{text}, {text}]".encode())
    assert loads(raw) is not None
    assert "64 levels" in refusal(nested(MAX_DEPTH, f"[{text}]".encode()))


def test_many_shallow_containers_are_not_deep():
    assert len(loads(json.dumps([[[1]]] * 5000))) == 5000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"conversation_id": 5}', "conversation_id: expected a string, got an integer"),
        (b'{"conversation_id": null}', "conversation_id: expected a string, got null"),
        (b"{}", "conversation_id: is required"),
        (b'{"conversation_id": ""}', "conversation_id: must not be empty"),
        (b'{"conversation_id": "   "}', "conversation_id: must not be blank nor contain NUL characters"),
        (b'{"conversation_id": "a\\u0000b"}', "conversation_id: must not be blank nor contain NUL characters"),
        (b'{"conversation_id": "' + b"x" * 37 + b'"}', "conversation_id: must have at most 36 characters"),
        (
            b'{"conversation_id": "c", "kind": "SHOUT"}',
            "kind: 'SHOUT' is not allowed; expected one of RESPONSE, UPDATE",
        ),
        (b'{"conversation_id": "c", "size": 0}', "size: must be at least 1"),
        (b'{"conversation_id": "c", "size": 9223372036854775808}', "size: must be at most 9223372036854775807"),
        (b'{"conversation_id": "c", "size": 1.5}', "size: expected an integer, got a number"),
        (b'{"conversation_id": "c", "size": true}', "size: expected an integer, got a boolean"),
        (b'{"conversation_id": "c", "filters": {"colour": 1}}', "filters.colour: is not a known field (channel_id)"),
        (b'{"conversation_id": "c", "events": ["a", 3]}', "events[1]: expected a string, got an integer"),
        (b'{"conversation_id": "c", "message": {"n": 1e400}}', "message[...]: is out of range"),
        (b'{"conversation_id": "c", "message": {"n": ' + b"9" * 5000 + b"}}", "message[...]: is out of range"),
        (b"[1, 2]", "body: expected an object, got an array"),
    ],
)
def test_a_document_of_the_wrong_shape_is_refused_naming_the_field(raw, message):
    assert refusal(raw, Request) == message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{not json", "body is not valid JSON"),
        (b'{"a": 1} trailing', "body is not valid JSON"),
        (b"\xff\xfe", "body is not UTF-8"),
        (b"", "body is not valid JSON"),
    ],
)
def test_what_is_not_json_is_refused(raw, words):
    assert refusal(raw).startswith(words)


def test_a_megabyte_long_field_name_is_not_repeated_back():
    message = refusal(b'{"' + b"z" * 1_000_000 + b'": 1, "conversation_id": "c"}', Request)
    assert len(message) < 200 and message.startswith("zzz")


# --- tolerant (Meta's webhook bodies) -----------------------------------------------------------------------


def test_tolerant_reading_replaces_lone_surrogates_with_the_replacement_character():
    document = loads_tolerant(b'{"text": "cut \\ud83d", "raw": "\xed\xa0\x80", "\\udc00": ["\\ud83d\\ude00"]}')
    assert document == {"text": "cut \ufffd", "raw": "\ufffd", "\ufffd": ["\U0001f600"]}
    assert loads_tolerant('{"text": "cut \\ud83d"}') == {"text": "cut \ufffd"}


def test_tolerant_reading_keeps_big_integers_exact():
    assert loads_tolerant(b'{"timestamp": 123456789012345678901234567890}') == {
        "timestamp": 123456789012345678901234567890
    }


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"score": NaN}', "NaN is not allowed"),
        (b'{"score": Infinity, "text": "\\ud800"}', "Infinity is not allowed"),
        (b'{"deep": ' + nested(MAX_DEPTH) + b"}", "64 levels"),
        (b"\xff", "not UTF-8"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_tolerant_reading_is_as_strict_for_the_rest(raw, words):
    with pytest.raises(InvalidJSON) as refused:
        loads_tolerant(raw)
    assert words in refused.value.message
    with pytest.raises(InvalidJSON):
        check_tolerant_object(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"object": "page", "entry": []}',
        b'{"text": "cut \\ud83d"}',
        b'{"text": "raw \xed\xa0\x80", "emoji": "\\\\u{2764}"}',
        b'{"deep": ' + nested(MAX_DEPTH - 1) + b"}",
        '{"text": "caf\u00e9"}'.encode(),
    ],
)
def test_the_webhook_check_accepts_what_tolerant_reading_accepts(raw):
    check_tolerant_object(raw)
    assert isinstance(loads_tolerant(raw), dict)


@pytest.mark.parametrize("raw", [b"[1]", b'"text"', b"3"])
def test_the_webhook_check_wants_an_object(raw):
    with pytest.raises(InvalidJSON, match="object"):
        check_tolerant_object(raw)
