"""An outbox table of an older version gains the event stream's ``tx`` column and its index in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee
import pytest

from airy_actors.db import database, open_database
from airy_actors.models import create_schema

OLD_OUTBOX = (
    'CREATE TABLE "outbox_event" ("id" INTEGER NOT NULL PRIMARY KEY, "type" VARCHAR(32) NOT NULL, '
    '"ordering_key" VARCHAR(64) NOT NULL, "payload" TEXT NOT NULL, "timestamp" INTEGER NOT NULL, '
    '"dispatched_at" INTEGER)'
)


class RolledBack(Exception):
    pass


def test_an_older_sqlite_outbox_gains_tx_and_its_index(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(OLD_OUTBOX)
        old.execute("INSERT INTO outbox_event (type, ordering_key, payload, timestamp) VALUES ('t', 'k', '{}', 1)")
    previous = database.obj
    try:
        open_database(f"sqlite:///{path}")
        with database.connection_context():
            create_schema()
            assert database.execute_sql("SELECT tx, id FROM outbox_event").fetchall() == [(0, 1)]
            assert "outbox_event_tx_id" in {index.name for index in database.get_indexes("outbox_event")}
            assert database.execute_sql("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        database.initialize(previous)


def test_an_older_postgresql_outbox_gains_tx_and_its_index(db: peewee.Database):
    # PostgreSQL's DDL is transactional: the session's table is made old, migrated, and put back as it was.
    with pytest.raises(RolledBack), database.atomic():
        database.execute_sql('DROP INDEX "outbox_event_tx_id"')
        database.execute_sql('ALTER TABLE "outbox_event" DROP COLUMN "tx"')
        database.execute_sql(
            "INSERT INTO outbox_event (type, ordering_key, payload, timestamp) VALUES ('t', 'k', '{}', 1)"
        )
        create_schema()
        assert database.execute_sql("SELECT tx FROM outbox_event").fetchall() == [(0,)]
        assert "outbox_event_tx_id" in {index.name for index in database.get_indexes("outbox_event")}
        raise RolledBack
