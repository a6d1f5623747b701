"""One scrape of the web sums every process of the host: the Procfile's ``web`` and ``worker`` as real processes.

The web runs no actor, so actor counts in its scrape can only come from the worker's files.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.fake_graph import FakeGraph
from tests.faults.processes import Web, Worker
from tests.metrics.scrape import Samples, parse, value
from tests.support import entry, sign, text_message, wait_until, webhook_body

PAGE = "1001"
REQUESTS = 5
MESSAGES_PER_REQUEST = 2


@pytest.fixture
def process_env(redis_server: None, fake_graph: FakeGraph, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The processes' environment: the session's database, a namespace and a data directory of their own."""
    namespace = f"{os.environ['AIRY_BROKER_NAMESPACE']}-metrics-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "AIRY_BROKER_NAMESPACE": namespace,
        "AIRY_DATA_DIR": str(tmp_path / "data"),
        "AIRY_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PORT", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    yield env
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def web_and_worker(process_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Web, Worker]]:
    worker = Worker(process_env, tmp_path, processes=1, threads=4).start()
    web = Web(process_env, tmp_path)
    try:
        web.start()
        yield web, worker
    finally:
        for process in (web, worker):
            if process.process is not None:
                process.stop()


def scrape(web: Web) -> Samples:
    answer = httpx.get(f"{web.url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def test_a_worker_process_counts_appear_in_the_webs_scrape(web_and_worker, channel, tmp_path):
    web, worker = web_and_worker
    # When Facebook posts requests that the worker turns into messages
    for number in range(REQUESTS):
        events = [text_message(PAGE, "2001", f"m_x{number}_{n}", "hello") for n in range(MESSAGES_PER_REQUEST)]
        body = webhook_body(entry(PAGE, *events))
        assert httpx.post(f"{web.url}/facebook", content=body, headers=sign(body), timeout=10).status_code == 200
    stored = REQUESTS * MESSAGES_PER_REQUEST

    def all_stored() -> Samples | None:
        samples = scrape(web)
        return samples if value(samples, "airy_ingestion_lag_seconds_count") >= stored else None

    # Then the web's scrape has the web's counts and the worker's
    samples = wait_until(all_stored, timeout=30, interval=0.2, message="the worker's counts never reached the web")
    assert value(samples, "airy_webhook_requests_total", outcome="200") == REQUESTS
    assert value(samples, "airy_ingestion_lag_seconds_count") == stored
    ingested = sum(
        value(samples, "airy_actor_messages_total", actor=actor, outcome="succeeded")
        for actor in ("ingest_webhook_requests", "ingest_webhook_request")
    )
    assert ingested >= 1
    # Each command writes to a directory of its own under AIRY_DATA_DIR/metrics
    runs = sorted(path.name for path in (tmp_path / "data" / "metrics").iterdir())
    assert runs == sorted([f"web-{web.pid}", f"worker-{worker.pid}"])

    # When the worker stops, what it counted is still counted
    worker.stop()
    after = scrape(web)
    assert value(after, "airy_ingestion_lag_seconds_count") == stored
    assert (
        sum(
            value(after, "airy_actor_messages_total", actor=actor, outcome="succeeded")
            for actor in ("ingest_webhook_requests", "ingest_webhook_request")
        )
        == ingested
    )
