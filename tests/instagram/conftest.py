"""Fixtures of the Instagram tests: a page with a linked Instagram account at the fake Graph API, its channel,
webhook deliveries over HTTP, a media store of the test's own, and small send retry timings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airy_actors.media import FileStore
from airy_actors.media.configured import use_media_store
from airy_actors.models import Channel, Message
from airy_actors.sending import delivery
from tests.fake_graph import FakeGraph
from tests.instagram.payloads import (
    ACCOUNT_ID,
    ACCOUNT_PICTURE,
    ACCOUNT_USERNAME,
    PAGE_ID,
    PAGE_NAME,
    PAGE_TOKEN,
    raw,
)
from tests.support import sign, wait_until


@pytest.fixture
def linked_page(fake_graph: FakeGraph) -> None:
    """Page 1001 at the fake Graph API, with its Instagram professional account linked."""
    fake_graph.add_page(PAGE_ID, PAGE_NAME, PAGE_TOKEN)
    fake_graph.add_instagram_account(PAGE_ID, ACCOUNT_ID, ACCOUNT_USERNAME, profile_picture_url=ACCOUNT_PICTURE)


@pytest.fixture
def instagram_channel(linked_page: None, db: Any) -> Channel:
    """The account's channel, connected (stored directly: the connect tests go through the API)."""
    return Channel.create(
        source="instagram",
        source_channel_id=ACCOUNT_ID,
        page_id=PAGE_ID,
        name=ACCOUNT_USERNAME,
        page_token=PAGE_TOKEN,
    )


@pytest.fixture
def messenger_channel(linked_page: None, db: Any) -> Channel:
    """The page's own Messenger channel, beside the account's."""
    return Channel.create(source_channel_id=PAGE_ID, page_id=PAGE_ID, name=PAGE_NAME, page_token=PAGE_TOKEN)


@pytest.fixture(autouse=True)
def media_store(tmp_path: Path) -> Iterator[FileStore]:
    """Inbound attachments are kept in a folder of the test's own."""
    store = FileStore(tmp_path / "media")
    use_media_store(store)
    yield store
    use_media_store(None)


@pytest.fixture
def deliver(api: httpx.Client) -> Callable[..., None]:
    """Posts an Instagram body of ``entries`` to the webhook, signed, and checks the 200."""

    def post(*entries: dict[str, Any]) -> None:
        body = raw(*entries)
        answer = api.post("/facebook", content=body, headers=sign(body))
        assert answer.status_code == 200, answer.text

    return post


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs of tens of milliseconds and four attempts, so that retry tests take a moment."""
    monkeypatch.setattr(delivery, "MIN_BACKOFF_MS", 20)
    monkeypatch.setattr(delivery, "MAX_BACKOFF_MS", 80)
    monkeypatch.setattr(delivery, "ECHO_GRACE_MS", 50)
    monkeypatch.setattr(delivery, "MAX_SEND_ATTEMPTS", 4)


def stored(mid: str, timeout: float = 10) -> Message:
    """The message Meta knows as ``mid``, once the worker stored it."""
    return wait_until(
        lambda: Message.get_or_none(Message.source_message_id == mid), timeout=timeout, message=f"no message {mid}"
    )
