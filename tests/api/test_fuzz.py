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

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=40)
known_ids = st.deferred(lambda: st.sampled_from(KNOWN_IDS))  # filled by the fixture, drawn at run time
values = st.recursive(
    scalars | known_ids,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), values, max_size=6)
raw_bodies = st.binary(max_size=64) | bodies.map(lambda body: json.dumps(body).encode())


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
