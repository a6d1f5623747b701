"""The nesting limit of JSON bodies, measured on the raw bytes, agrees with the decoded document's depth."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airy_actors.errors import BadRequest
from api.bodies import MAX_DEPTH, parse_json, require_json_object

# Strings full of what could fool a scan of the bytes: brackets, quotes and backslashes, escaped or not.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\ab\n\u00e9')), max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(tricky_text, children, max_size=3),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(child) for child in value), default=0)
    return 0


def nested(levels: int, inner: Any) -> Any:
    for level in range(levels):
        inner = [inner] if level % 2 else {"k": inner}
    return inner


@settings(max_examples=300, deadline=None)
@given(documents, st.integers(min_value=0, max_value=80))
def test_a_body_is_refused_exactly_when_it_nests_deeper_than_the_limit(document, wrapping):
    body = nested(wrapping, document)
    raw = json.dumps(body).encode()  # escapes quotes and backslashes as clients do
    if depth(body) > MAX_DEPTH:
        with pytest.raises(BadRequest, match="nested deeper than 64"):
            parse_json(raw)
    else:
        assert parse_json(raw) == orjson.loads(raw)


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 1])
def test_brackets_and_escapes_inside_strings_are_not_levels(levels):
    body: dict[str, Any] = {"text": "[[[[{{{{" * 40 + '\\"[' * 40}
    for _ in range(levels - 1):
        body = {"k": body}
    raw = json.dumps(body).encode()
    if levels > MAX_DEPTH:
        with pytest.raises(BadRequest, match="nested deeper than 64"):
            require_json_object(raw)
    else:
        require_json_object(raw)
