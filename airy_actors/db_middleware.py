"""Gives every actor run a database connection and hands it back afterwards."""

from __future__ import annotations

import logging

import dramatiq
import peewee
from dramatiq.middleware import Middleware

from airy_actors.db import database

logger = logging.getLogger(__name__)


class DatabaseConnections(Middleware):
    """Opens (or takes from the pool) a connection before each message and returns it after."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        try:
            database.connect(reuse_if_open=True)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            # Dramatiq would log a middleware failure as critical, with a traceback, for every message of an
            # outage. The actor's first query connects again and fails, and the message is retried as usual.
            logger.warning(
                "database unavailable before an actor ran",
                extra={"actor": message.actor_name, "error": type(exc).__name__},
            )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        if not database.is_closed():
            database.close()

    after_skip_message = after_process_message
