"""What every airy-actors process does before it serves: logging, settings, database, schema."""

from __future__ import annotations

import logging

import peewee

from airy_actors.config import Settings, get_settings
from airy_actors.db import database, is_postgres, open_database
from airy_actors.errors import ConfigError
from airy_actors.logs import configure_logging
from airy_actors.models import create_schema

logger = logging.getLogger(__name__)

SCHEMA_LOCK_ID = 0x41697279  # "Airy": serializes schema creation between processes starting together


def prepare_process(*, log: bool = True, max_connections: int = 32) -> Settings:
    """Reads the settings, opens the database and creates or migrates the schema.

    Parameters:
      max_connections: the PostgreSQL pool size of this process.

    Raises:
      ConfigError: when a setting is malformed or the database cannot be reached.
    """
    if log:
        configure_logging()
    settings = get_settings()
    open_database(settings.database_url, max_connections=max_connections)
    try:
        with database.connection_context():
            if is_postgres():
                database.execute_sql("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_ID,))
            try:
                create_schema()
            finally:
                if is_postgres():
                    database.execute_sql("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_ID,))
    except peewee.OperationalError as exc:
        raise ConfigError(f"DATABASE_URL: cannot open the database ({_first_line(exc)})") from None
    return settings


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
