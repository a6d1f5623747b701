"""Fixtures of the channel tests: a Facebook page at the fake Graph API, and connecting it over the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.channels.pages import PAGE_ID, PAGE_NAME, PAGE_PICTURE, PAGE_TOKEN
from tests.fake_graph import FakeGraph


@pytest.fixture
def page(fake_graph: FakeGraph) -> dict[str, str]:
    """A page at the fake Graph API, with its token."""
    fake_graph.add_page(PAGE_ID, PAGE_NAME, PAGE_TOKEN, picture_url=PAGE_PICTURE)
    return {"page_id": PAGE_ID, "name": PAGE_NAME, "token": PAGE_TOKEN, "picture": PAGE_PICTURE}


@pytest.fixture
def connect(api: httpx.Client, worker: Any) -> Callable[..., dict[str, Any]]:
    """Connects a page over the API and returns the channel; fails the test unless the answer is 200."""

    def connect_page(page_id: str = PAGE_ID, page_token: str = PAGE_TOKEN, **fields: str) -> dict[str, Any]:
        answer = api.post("/facebook.connect", json={"page_id": page_id, "page_token": page_token, **fields})
        assert answer.status_code == 200, answer.text
        return answer.json()

    return connect_page
