"""The database: one Peewee proxy, bound at start-up to SQLite or PostgreSQL, and plain SQL on it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse import db_url
from playhouse.pool import PooledDatabase

from airy_actors.errors import ConfigError

logger = logging.getLogger(__name__)

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",  # durable under WAL at every commit that reaches the log
    "foreign_keys": 1,
    "busy_timeout": 15_000,  # ms: web and worker processes share the file
}


def open_database(url: str, *, max_connections: int = 32) -> peewee.Database:
    """Opens the database at ``url`` and binds the models' proxy to it.

    Parameters:
      url: a Peewee database URL, ``sqlite:///path`` or ``postgresql://user@host/name``.
      max_connections: the PostgreSQL pool size of this process.

    Returns:
      The bound database.

    Raises:
      ConfigError: when the URL is of an unsupported kind.
    """
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = peewee.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=15)
    elif scheme in ("postgresql", "postgres"):
        db = db_url.connect(
            url.replace(f"{scheme}://", "postgresql+pool://", 1),
            max_connections=max_connections,
            stale_timeout=300,
            timeout=10,  # seconds to wait for a free pooled connection
            connect_timeout=5,
        )
    else:
        raise ConfigError(f"DATABASE_URL must be sqlite:/// or postgresql://, got scheme {scheme!r}")
    database.initialize(db)
    return db


def execute(sql: str, *params: Any, **lists: str) -> Any:
    """Runs plain SQL written once for both engines on this thread's connection; returns the cursor.

    The hot paths (storing webhook requests and contact messages, accepting and delivering sends) are plain SQL:
    building Peewee's queries and models cost more CPU than the database's own work.

    Parameters:
      sql: the statement, ``{p}`` marking each parameter (the engine's placeholder) and ``{name}`` each list.
      params: the parameters, in order.
      lists: lists of placeholders or rows to put in the statement by name, written with ``{p}`` too.
    """
    p = database.param
    return database.execute_sql(sql.format(p=p, **{name: text.format(p=p) for name, text in lists.items()}), params)


def placeholders(count: int, row: str = "{p}") -> str:
    """``count`` times ``row``, comma-separated: a list for :func:`execute`."""
    return ", ".join([row] * count)


def is_postgres() -> bool:
    """Whether the bound database is PostgreSQL (row locks, ``FOR UPDATE``, advisory locks)."""
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def supports_returning() -> bool:
    """Whether the bound database answers ``INSERT ... RETURNING`` (PostgreSQL; SQLite from 3.35 on)."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        return peewee.__sqlite_version__ >= (3, 35, 0)
    return True


def write_transaction() -> peewee._atomic:
    """A transaction that will write.

    On SQLite it takes the write lock at BEGIN, so that two processes never both read and then collide on
    upgrading to a writer (which SQLite reports at once, bypassing its busy timeout).
    """
    if isinstance(database.obj, peewee.SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def release_connection() -> None:
    """Hands this thread's pooled connection back before a wait (an HTTP call, a throttling slot).

    The next query takes one again. A worker thread so holds a connection only while it talks to the
    database, and a worker can run more threads than its pool has connections. Inside a transaction, or on
    SQLite (one connection a thread, no pool), it does nothing.
    """
    if isinstance(database.obj, PooledDatabase) and not database.in_transaction() and not database.is_closed():
        database.close()
