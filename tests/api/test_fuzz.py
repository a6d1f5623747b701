"""Hostile input on every endpoint: whatever the body, no 5xx, a JSON message, and a refusal changes nothing."""

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

# Every JSON endpoint (/media.upload takes the file itself).
ENDPOINTS = sorted(
    {route.path for route in routes() if "POST" in route.methods and route.path not in ("/facebook", "/media.upload")}
)
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

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=40)
known_ids = st.deferred(lambda: st.sampled_from(KNOWN_IDS))  # filled by the fixture, drawn at run time
values = st.recursive(
    scalars | known_ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), values, max_size=6)
# What a careless or hostile client writes that JSON cannot hold, or that no column can: spliced into a body
# where a value goes. Lone surrogates, NaN and infinities, nesting past 64 levels, out-of-range numbers.
hostile_values = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        '"\\ud800"',
        '"cut \\udc00 here"',
        "1e400",
        str(2**64),
        str(-(2**63) - 1),
        "[" * 65 + "]" * 65,
        "[" * 1000 + "]" * 1000,
        '{"a":' * 70 + "1" + "}" * 70,
    ]
)
hostile_bodies = st.builds(
    lambda field, value: f'{{"{field}": {value}, "page_size": 5}}'.encode(), st.sampled_from(FIELDS), hostile_values
)
raw_bodies = st.binary(max_size=64) | bodies.map(lambda body: json.dumps(body).encode()) | hostile_bodies
refused_values = hostile_values.filter(lambda value: not value.lstrip("-").isdigit())  # big integers may clamp


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
    @given(raw=raw_bodies)
    def probe(raw: bytes) -> None:
        before = fingerprint()
        try:
            answer = api.post(path, content=raw, headers={"Content-Type": "application/json"}, timeout=30)
        except httpx.ReadTimeout:
            pytest.fail(f"{path} did not answer {raw!r}")
        assert answer.status_code < 500, (raw, answer.text)
        payload = answer.json()
        if answer.status_code >= 400:
            assert isinstance(payload.get("message"), str) and payload["message"], payload
            assert "Traceback" not in answer.text
            assert fingerprint() == before, f"{path} refused {raw!r} but changed the data"

    probe()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_what_json_cannot_hold_is_refused_by_every_endpoint_whatever_the_field(api, seeded, path):
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(field=st.sampled_from(FIELDS), value=refused_values)
    def probe(field: str, value: str) -> None:
        raw = f'{{"{field}": {value}}}'.encode()
        before = fingerprint()
        answer = api.post(path, content=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400, (raw[:80], answer.text)
        assert answer.json()["message"].startswith("body")
        assert fingerprint() == before

    probe()
