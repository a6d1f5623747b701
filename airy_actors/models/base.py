"""What every model shares: the database proxy, ids, JSON columns."""

from __future__ import annotations

import json
import uuid
from typing import Any

import peewee

from airy_actors.db import database

ID_NAMESPACE = uuid.UUID("6f1c1b5e-2f43-4f55-9c0e-a1ac7a1e55e1")


def new_id() -> str:
    """A fresh random id."""
    return str(uuid.uuid4())


def stable_id(*parts: str) -> str:
    """An id derived from ``parts``: the same parts give the same id, in every process."""
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))


class JSONField(peewee.TextField):
    """A JSON value stored as text, so that SQLite and PostgreSQL read it the same way."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
