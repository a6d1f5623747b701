"""Fixtures of the sending tests: a connected page, conversations whose contact wrote a given time ago, and
small retry timings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airy_actors.conversations import ensure_conversation
from airy_actors.models import Channel, Conversation
from airy_actors.sending import delivery
from airy_actors.timestamps import now_ms
from tests.fake_graph import FakeGraph

PAGE_ID = "1001"
PAGE_TOKEN = "EAAPageToken1001"
HOUR_MS = 3_600_000


@pytest.fixture
def channel(fake_graph: FakeGraph, db: Any) -> Channel:
    """A connected channel of a page that the fake Graph API knows."""
    fake_graph.add_page(PAGE_ID, "Acme", PAGE_TOKEN)
    return Channel.create(source_channel_id=PAGE_ID, name="Acme", page_token=PAGE_TOKEN)


@pytest.fixture
def conversation(channel: Channel) -> Callable[..., Conversation]:
    """Makes a conversation with contact ``psid`` whose last message was ``wrote_ago_ms`` ago (None: never)."""

    def make(psid: str = "2001", wrote_ago_ms: int | None = 60_000) -> Conversation:
        ref = ensure_conversation(channel, psid)
        last = None if wrote_ago_ms is None else now_ms() - wrote_ago_ms
        Conversation.update(last_contact_message_at=last).where(Conversation.id == ref.conversation.id).execute()
        return Conversation.get_by_id(ref.conversation.id)

    return make


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs of tens of milliseconds and four attempts, so that retry tests take a moment."""
    monkeypatch.setattr(delivery, "MIN_BACKOFF_MS", 20)
    monkeypatch.setattr(delivery, "MAX_BACKOFF_MS", 80)
    monkeypatch.setattr(delivery, "ECHO_GRACE_MS", 50)
    monkeypatch.setattr(delivery, "MAX_SEND_ATTEMPTS", 4)
