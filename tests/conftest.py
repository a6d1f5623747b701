"""Fixtures: real Redis and PostgreSQL, the broker and an in-process worker, the app over real HTTP, and
the fake Graph API.

Tests of Redis and PostgreSQL skip on a machine without them, but fail in CI (``CI=true``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator

import pytest

# pytest loads this file as the module `conftest`: importing it from a test as `tests.conftest` would run it again,
# with another SESSION, and point the environment of every process started afterwards at a database that does
# not exist. Shared helpers live in tests/support.py.
if os.environ.get("AIRY_TEST_SESSION_OF") == str(os.getpid()):
    raise ImportError("tests/conftest.py is loaded by pytest; import what it offers from tests.support instead")
os.environ["AIRY_TEST_SESSION_OF"] = str(os.getpid())
SESSION = secrets.token_hex(4)
REDIS_URL = os.environ.get("AIRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN_URL = os.environ.get("AIRY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
POSTGRES_URL = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/airy_test_{SESSION}"

# The broker is built when the actors are imported, from these settings: set them first.
os.environ.update(
    {
        "REDIS_URL": REDIS_URL,
        "AIRY_BROKER_NAMESPACE": f"airy-test-{SESSION}",
        "FACEBOOK_APP_ID": "1517776481860111",
        "FACEBOOK_APP_SECRET": "test-app-secret",
        "FACEBOOK_WEBHOOK_SECRET": "test-verify-token",
        "DATABASE_URL": POSTGRES_URL,
        "AIRY_GRAPH_TIMEOUT_MS": "2000",
        # The spool, the media folder and the metrics files of this session, never the checkout's own .airy/.
        "AIRY_DATA_DIR": tempfile.mkdtemp(prefix=f"airy-test-{SESSION}-"),
        # The integrator receivers of the tests listen on 127.0.0.1.
        "AIRY_WEBHOOKS_ALLOW_PRIVATE": "true",
    }
)
os.environ.pop("AIRY_SYSTEM_TOKEN", None)

import dramatiq  # noqa: E402
import httpx  # noqa: E402
import peewee  # noqa: E402

from airy_actors.config import Settings, get_settings, use_settings  # noqa: E402
from airy_actors.db import database, open_database  # noqa: E402
from airy_actors.graph import GraphClient, use_graph_client  # noqa: E402
from airy_actors.models import MODELS, create_schema  # noqa: E402
from tests.fake_graph import FakeGraph  # noqa: E402
from tests.support import ThreadedServer  # noqa: E402
from workers import actors  # noqa: E402,F401
from workers.broker import broker as redis_broker  # noqa: E402

pytest_plugins = ["tests.pool"]  # the one_connection fixture

IN_CI = os.environ.get("CI", "").lower() == "true"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _require(service: str, host: str, port: int) -> None:
    if not _answers(host, port):
        if IN_CI:
            pytest.fail(f"{service} is not answering on {host}:{port}; CI must start it")
        pytest.skip(f"{service} is not running on {host}:{port}")


@pytest.fixture(scope="session")
def redis_server() -> None:
    _require("Redis", "127.0.0.1", 6379)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[peewee.Database]:
    """A database of its own for this test session, dropped at the end."""
    _require("PostgreSQL", "127.0.0.1", 5432)
    admin = peewee.PostgresqlDatabase(None)
    admin.init(**_pg_params(POSTGRES_ADMIN_URL))
    admin.connect()
    admin.execute_sql(f"CREATE DATABASE airy_test_{SESSION}")
    db = open_database(POSTGRES_URL)
    with database.connection_context():
        create_schema()
    yield db
    db.close_all()
    admin.execute_sql(f"DROP DATABASE IF EXISTS airy_test_{SESSION} WITH (FORCE)")
    admin.close()


def _pg_params(url: str) -> dict[str, object]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return {
        "database": parsed.path.lstrip("/"),
        "user": parsed.username,
        "host": parsed.hostname,
        "port": parsed.port or 5432,
    }


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> peewee.Database:
    path = tmp_path_factory.mktemp("sqlite") / "airy.db"
    db = open_database(f"sqlite:///{path}")
    with database.connection_context():
        create_schema()
    return db


def _clean(db: peewee.Database) -> None:
    database.initialize(db)
    with database.connection_context():
        if isinstance(db, peewee.PostgresqlDatabase):
            tables = ", ".join(f'"{model._meta.table_name}"' for model in MODELS)
            database.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        else:
            for model in reversed(peewee.sort_models(MODELS)):
                model.delete().execute()


@pytest.fixture
def db(postgres_database: peewee.Database) -> Iterator[peewee.Database]:
    """PostgreSQL, emptied before the test; the test holds a connection."""
    _clean(postgres_database)
    with database.connection_context():
        yield postgres_database


@pytest.fixture(params=["postgres", "sqlite"])
def any_db(request: pytest.FixtureRequest) -> Iterator[peewee.Database]:
    """Each storage engine in turn, emptied before the test; the test holds a connection."""
    chosen = request.getfixturevalue(f"{request.param}_database")
    _clean(chosen)
    with database.connection_context():
        yield chosen


@pytest.fixture(scope="session")
def fake_graph_server() -> Iterator[FakeGraph]:
    fake = FakeGraph().start()
    use_settings(dataclasses.replace(get_settings(), facebook_graph_url=fake.url))
    os.environ["FACEBOOK_GRAPH_URL"] = fake.url
    use_graph_client(GraphClient(fake.url, timeout_ms=get_settings().graph_timeout_ms))
    yield fake
    fake.stop()


@pytest.fixture
def fake_graph(fake_graph_server: FakeGraph) -> FakeGraph:
    """The fake Graph API, emptied before the test; the product's Graph client points at it."""
    fake_graph_server.reset()
    return fake_graph_server


@pytest.fixture
def broker(redis_server: None) -> Iterator[dramatiq.Broker]:
    """The real Redis broker, its queues emptied before and after the test."""
    redis_broker.flush_all()
    yield redis_broker
    redis_broker.flush_all()


@pytest.fixture
def worker(broker: dramatiq.Broker, db: peewee.Database) -> Iterator[dramatiq.Worker]:
    """A Dramatiq worker in this process, consuming from real Redis."""
    running = dramatiq.Worker(broker, worker_threads=8, worker_timeout=50)
    running.start()
    yield running
    running.stop(timeout=10_000)


@pytest.fixture
def settings(fake_graph: FakeGraph) -> Settings:
    return get_settings()


@pytest.fixture
def api(settings: Settings, db: peewee.Database, broker: dramatiq.Broker) -> Iterator[httpx.Client]:
    """An httpx client of the app served by uvicorn on 127.0.0.1."""
    yield from _serve(settings)


@pytest.fixture
def serve_app(db: peewee.Database, broker: dramatiq.Broker, fake_graph: FakeGraph):
    """Serves the app with other settings: ``with serve_app(system_token="t") as client: ...``."""
    from contextlib import contextmanager

    @contextmanager
    def serve(**changes: object) -> Iterator[httpx.Client]:
        yield from _serve(dataclasses.replace(get_settings(), **changes))

    return serve


def _serve(settings: Settings) -> Iterator[httpx.Client]:
    from api.app import create_app

    server = ThreadedServer(create_app(settings)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=15) as client:
            yield client
    finally:
        server.stop()
