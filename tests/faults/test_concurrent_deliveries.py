"""Bursts of concurrent deliveries, duplicates included: the web stores them in batches, each request once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from airy_actors import ingestion
from airy_actors.models import WebhookRequest
from airy_actors.webhook_requests import store_webhook_requests
from tests.faults.outcome import (
    assert_each_event_is_one_message,
    assert_requests_stored_once_and_processed,
    wait_for_messages,
)
from tests.faults.stream import make_batches
from tests.support import entry, sign, text_message, webhook_body

PAGE_ID = "1001"


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "one-insert-a-row"])
def test_a_batch_with_a_repeated_request_stores_it_once(any_db, returning, monkeypatch):
    monkeypatch.setattr(ingestion, "supports_returning", lambda: returning)
    first = webhook_body(entry(PAGE_ID, text_message(PAGE_ID, "2001", "m_1", "hello")))
    second = webhook_body(entry(PAGE_ID, text_message(PAGE_ID, "2001", "m_2", "again")))
    # When one batch holds the same request twice
    stored = store_webhook_requests([first, second, first])
    # Then it is stored once, and only its first occurrence is new
    assert [new for _, new in stored] == [True, True, False]
    assert stored[0][0] == stored[2][0] != stored[1][0]
    assert WebhookRequest.select().count() == 2
    # And a later batch finds both, new to nobody
    assert store_webhook_requests([second, first]) == [(stored[1][0], False), (stored[0][0], False)]


def test_concurrent_deliveries_with_duplicates_are_each_one_message(channel, process_env, processes):
    # Given the web and a worker
    web = processes("web", process_env)
    processes("worker", process_env, processes=1, threads=4)
    batches = make_batches(channel.source_channel_id, count=150, events_per_batch=4, contacts=30, tag="burst")
    # When 32 clients post every batch twice, all at once
    deliveries = [batch.body for batch in batches] * 2

    def post(body: bytes) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(f"{web.url}/facebook", content=body, headers=sign(body)).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(post, deliveries))

    # Then every delivery is answered 200, and every event is exactly one message
    assert set(statuses) == {200}
    mids = [mid for batch in batches for mid in batch.mids]
    wait_for_messages(len(mids), timeout=60)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])
