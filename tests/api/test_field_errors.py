"""msgspec's validation errors in the API's words, without a server: each names the field, as clients read it."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api import schemas
from api.field_errors import describe


def refusal(schema: type, value: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.convert(value, schema, strict=True)
    return describe(raised.value, value, schema)


@pytest.mark.parametrize(
    ("schema", "value", "said"),
    [
        (schemas.ConversationRef, {}, "conversation_id is required"),
        (schemas.ConversationRef, {"conversation_id": None}, "conversation_id is required"),
        (schemas.ConversationRef, {"conversation_id": 5}, "conversation_id must be a string"),
        (schemas.ConversationRef, {"conversation_id": ["x"]}, "conversation_id must be a string"),
        (schemas.ConversationRef, {"conversation_id": ""}, "conversation_id must not be empty"),
        (schemas.ConversationRef, {"conversation_id": " \t"}, "conversation_id must not be empty"),
        (schemas.ConversationRef, {"conversation_id": "a\x00b"}, "conversation_id must not contain NUL characters"),
        (schemas.ChannelRef, {"channel_id": "1" * 65}, "channel_id must be at most 64 characters"),
        (schemas.ConversationsList, {"filters": "x"}, "filters must be an object"),
        (schemas.ConversationsList, {"filters": {"channel_id": 3}}, "filters.channel_id must be a string"),
        (
            schemas.ConversationsList,
            {"filters": {"colour": "red"}},
            "filters.colour is not a known filter (channel_id, display_name)",
        ),
        (schemas.ConversationsList, {"cursor": 5}, "cursor must be a string"),
        (
            schemas.MessagesSend,
            {"conversation_id": "c", "message": {}},
            "message must not be empty: give it text or an attachment",
        ),
        (
            schemas.MessagesSend,
            {"conversation_id": "c", "message": {"text": "x"}, "messaging_type": "SHOUT"},
            "messaging_type must be one of MESSAGE_TAG, RESPONSE, UPDATE, not 'SHOUT'",
        ),
        (schemas.WebhooksSubscribe, {"url": "u", "events": []}, "events must not be empty"),
        (schemas.WebhooksSubscribe, {"url": "u", "events": ["message.created", 3]}, "events[1] must be a string"),
        (schemas.WebhooksSubscribe, {"url": "u", "headers": ["X-Team"]}, "headers must be an object"),
    ],
)
def test_a_refused_field_is_named_in_the_words_clients_read(schema, value, said):
    assert refusal(schema, value) == said


def test_an_unknown_event_type_names_the_value_and_the_known_ones():
    said = refusal(schemas.WebhooksSubscribe, {"url": "u", "events": ["message.created", "message.deleted"]})
    assert said.startswith("events[1] must be one of ") and "message.created" in said
    assert said.endswith("not 'message.deleted'")


def test_unknown_top_level_fields_are_ignored_and_an_empty_cursor_is_the_first_page():
    body = msgspec.convert({"cursor": "", "page_size": 10**30, "colour": "red"}, schemas.ConversationsList)
    assert body.page() == {"cursor": None, "page_size": 100}
