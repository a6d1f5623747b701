"""Fixtures of the fault tests: the Procfile's processes as real subprocesses, each test on a broker
namespace of its own, a connected channel, a private Redis server and a cuttable path to PostgreSQL.

The test process itself reads PostgreSQL directly (the ``db`` fixture of ``tests/conftest.py``), so that what
it checks never depends on the fault it injects.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import peewee
import pytest
import redis

from airy_actors.models import Channel
from tests.fake_graph import FakeGraph
from tests.faults.processes import AiryProcess, Web, Worker, free_port
from tests.faults.tcp_proxy import TcpProxy
from tests.support import wait_until

PAGE_ID = "1001"
PAGE_TOKEN = "PAGE-TOKEN-FAULTS"


@pytest.fixture
def namespace(redis_server: None) -> Iterator[str]:
    """A broker namespace for this test alone; its keys are deleted from the shared Redis afterwards."""
    name = f"{os.environ['AIRY_BROKER_NAMESPACE']}-faults-{secrets.token_hex(3)}"
    yield name
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def process_env(namespace: str, fake_graph: FakeGraph, tmp_path: Path) -> dict[str, str]:
    """The environment of the product's processes: the test session's settings, this test's namespace and
    data folder (the webhook's spool).

    ``fake_graph`` makes ``FACEBOOK_GRAPH_URL`` point at the fake, so profile fetches stay on this machine.
    """
    env = dict(os.environ)
    env.update(
        {
            "AIRY_BROKER_NAMESPACE": namespace,
            "AIRY_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "AIRY_DATA_DIR": str(tmp_path / "data"),
        }
    )
    env.pop("PORT", None)
    return env


@pytest.fixture
def channel(db: peewee.Database, fake_graph: FakeGraph) -> Channel:
    """A connected Facebook page, stored directly."""
    fake_graph.add_page(PAGE_ID, "Acme", token=PAGE_TOKEN)
    return Channel.create(source_channel_id=PAGE_ID, name="Acme", page_token=PAGE_TOKEN)


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., AiryProcess]]:
    """Starts web and worker processes: ``processes("web", env)``, ``processes("worker", env)``.

    Every process is stopped at the end of the test; when the test failed, the tail of each log is printed.
    """
    started: list[AiryProcess] = []

    def start(kind: str, env: dict[str, str], **options: int) -> AiryProcess:
        process: AiryProcess = Web(env, tmp_path) if kind == "web" else Worker(env, tmp_path, **options)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for process in started:
            print(f"\n===== {process.name} log (last lines) =====\n{process.log_tail(60)}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class PrivateRedis:
    """A redis-server of this test alone, on a free port, keeping nothing on disk: a restart empties it."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_path = log_dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not on PATH"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, timeout=10, interval=0.05, message="the private redis-server did not start")
        return self

    def crash(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.crash()


@pytest.fixture
def postgres_proxy(postgres_database: peewee.Database) -> Iterator[TcpProxy]:
    """A proxy in front of the test session's PostgreSQL; ``postgres_proxy.cut()`` takes the database away."""
    target = urlparse(os.environ["DATABASE_URL"])
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    yield proxy
    proxy.stop()


def through(proxy: TcpProxy, database_url: str) -> str:
    """``database_url`` with its host and port replaced by the proxy's."""
    parsed = urlparse(database_url)
    netloc = f"{parsed.username}@127.0.0.1:{proxy.port}" if parsed.username else f"127.0.0.1:{proxy.port}"
    return parsed._replace(netloc=netloc).geturl()
