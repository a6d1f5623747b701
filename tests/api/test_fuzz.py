"""Hostile input on every endpoint: whatever the body, no 5xx, a JSON message, and a refusal changes nothing.

The bodies include what strict JSON refuses (NaN, infinities, lone surrogates, numbers out of range, nesting
past 64 levels): those must be 400s."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airy_actors.conversations import ensure_conversation, insert_message
from airy_actors.models import MODELS, Channel
from api.app import routes

ENDPOINTS = sorted({route.path for route in routes() if "POST" in route.methods and route.path != "/facebook"})
FIELDS = [
    "conversation_id",
    "message_id",
    "channel_id",
    "page_id",
    "page_token",
    "name",
    "image_url",
    "auth_token",
    "job_id",
    "cursor",
    "page_size",
    "filters",
    "message",
    "messaging_type",
    "tag",
    "url",
    "headers",
    "events",
    "signature_key",
    "id",
    "delivery_id",
    "source",
    "display_name",
]
KNOWN_IDS: list[str] = []
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

texts = st.text(max_size=40) | st.builds(
    lambda before, surrogate, after: before + surrogate + after,
    st.text(max_size=8),
    st.sampled_from(LONE_SURROGATES),
    st.text(max_size=8),
)
numbers = (
    st.integers(-(2**63), 2**63)
    | st.integers(min_value=2**63, max_value=10**40)  # beyond any BIGINT column
    | st.integers(min_value=-(10**40), max_value=-(2**63) - 1)
    | st.floats()  # NaN and infinities included: json.dumps writes them as NaN, Infinity, -Infinity
)
scalars = st.none() | st.booleans() | numbers | texts
known_ids = st.deferred(lambda: st.sampled_from(KNOWN_IDS))  # filled by the fixture, drawn at run time
values = st.recursive(
    scalars | known_ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | texts, values, max_size=6)


def must_be_refused(value: object) -> bool:
    """Whether a decoded body holds what strict JSON refuses: NaN or an infinity, a lone surrogate."""
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, str):
        return any(surrogate in value for surrogate in LONE_SURROGATES)
    if isinstance(value, list):
        return any(must_be_refused(item) for item in value)
    if isinstance(value, dict):
        return any(must_be_refused(key) or must_be_refused(item) for key, item in value.items())
    return False


# Raw JSON values that json.dumps cannot write: tokens out of range, raw surrogates, nesting past 64 levels.
RAW_VALUES = [b"NaN", b"-Infinity", b"1e400", b"-1e400", b"9" * 5000, b'"\\ud83d"', b'"cut \xed\xa0\xbd"']
raw_values = (
    st.sampled_from(RAW_VALUES)
    | st.integers(65, 2000).map(lambda levels: b"[" * levels + b"]" * levels)
    | st.integers(65, 300).map(lambda levels: b'{"a": ' * levels + b"1" + b"}" * levels)
)


def spliced(field: str, raw_value: bytes, body: dict[str, object]) -> tuple[bytes, bool]:
    """``body`` with ``field`` set to ``raw_value`` first; refused, unless a page_size of many digits (clamped)."""
    body = {name: value for name, value in body.items() if name != field}  # a repeated field would win
    rest = json.dumps(body).encode()[1:]
    raw = b'{"' + field.encode() + b'": ' + raw_value + (b", " + rest if body else b"}")
    return raw, not (field == "page_size" and raw_value.isdigit())


raw_bodies = (
    st.binary(max_size=64).map(lambda raw: (raw, False))
    | bodies.map(lambda body: (json.dumps(body).encode(), must_be_refused(body)))
    | st.builds(spliced, st.sampled_from(FIELDS), raw_values, bodies.filter(lambda body: not must_be_refused(body)))
)


def fingerprint() -> str:
    """A digest of every row of every table: equal before and after means nothing changed."""
    digest = hashlib.sha256()
    for model in MODELS:
        for row in model.select().order_by(*model._meta.get_primary_keys()).tuples():
            digest.update(repr(row).encode())
    return digest.hexdigest()


@pytest.fixture
def seeded(db, fake_graph):
    channel = Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")
    ref = ensure_conversation(channel, "2001")
    insert_message(
        ref.conversation,
        message_id="a0000000-0000-0000-0000-000000000001",
        source_message_id="m_1",
        content={},
        from_contact=True,
        sender_id="2001",
        sent_at=1_700_000_000_000,
        delivery_state="delivered",
    )
    KNOWN_IDS[:] = [channel.id, ref.conversation.id, "a0000000-0000-0000-0000-000000000001"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_body_makes_an_endpoint_fail_or_change_state_when_refused(api, seeded, path):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=raw_bodies)
    def probe(case: tuple[bytes, bool]) -> None:
        raw, refused = case
        before = fingerprint()
        try:
            answer = api.post(path, content=raw, headers={"Content-Type": "application/json"}, timeout=30)
        except httpx.ReadTimeout:
            pytest.fail(f"{path} did not answer {raw!r}")
        assert answer.status_code < 500, (raw, answer.text)
        if refused:
            assert answer.status_code == 400, (raw[:300], answer.text)
        payload = answer.json()
        if answer.status_code >= 400:
            assert isinstance(payload.get("message"), str) and payload["message"], payload
            assert "Traceback" not in answer.text
            assert fingerprint() == before, f"{path} refused {raw!r} but changed the data"

    probe()
