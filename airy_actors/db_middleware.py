"""Gives every actor run a database connection and hands it back afterwards."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware

from airy_actors.db import database


class DatabaseConnections(Middleware):
    """Opens (or takes from the pool) a connection before each message and returns it after."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        database.connect(reuse_if_open=True)

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
