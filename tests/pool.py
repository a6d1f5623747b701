"""A PostgreSQL pool of one connection, to prove that a wait holds no database connection.

A worker runs more threads than its pool has connections; that is only safe if no thread keeps its connection
while it waits on something else (Facebook, a throttling slot, an integrator's webhook).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import peewee
import pytest
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded

from airy_actors.db import database


def taken_elsewhere() -> bool:
    """Whether another thread fails, at once, to take a database connection now."""
    failed: list[bool] = []

    def take() -> None:
        try:
            database.connect()
            database.close()
        except MaxConnectionsExceeded:
            failed.append(True)

    taker = threading.Thread(target=take)
    taker.start()
    taker.join(timeout=10)
    return failed == [True]


@pytest.fixture
def one_connection(db: peewee.Database) -> Iterator[peewee.Database]:
    """The models bound to a pool of a single connection that never waits: a second taker fails at once."""
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+pool://", 1)
    pool = db_url.connect(url, max_connections=1)
    database.initialize(pool)
    with database.connection_context():
        assert taken_elsewhere()
    yield pool
    pool.close_all()
    database.initialize(db)
