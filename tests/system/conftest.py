"""Fixtures of the tests that run the product's processes on the test session's Redis and PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fake_graph import FakeGraph

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def namespace(redis_server: None) -> Iterator[str]:
    """A broker namespace for this test alone; its keys are deleted from the shared Redis afterwards."""
    name = f"{os.environ['AIRY_BROKER_NAMESPACE']}-system-{secrets.token_hex(3)}"
    yield name
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def process_env(namespace: str, fake_graph: FakeGraph, postgres_database: object, tmp_path: Path) -> dict[str, str]:
    """The environment of the product's processes: the session's PostgreSQL and Redis, this test's namespace,
    the fake Graph API (profile fetches stay on this machine), and this checkout's code on the path.
    """
    env = dict(os.environ)
    env.update(
        {
            "AIRY_BROKER_NAMESPACE": namespace,
            "AIRY_DATA_DIR": str(tmp_path / "data"),
            "AIRY_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(REPOSITORY),
        }
    )
    env.pop("PORT", None)
    return env


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keeps each phase's report on the test (``item.rep_call``), for fixtures that print logs on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
