"""Hands back, after every actor run, the database connection it took (Peewee connects on the first query)."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware

from airy_actors.db import database


class DatabaseConnections(Middleware):
    """Hands back, after each message, the connection its actor took (from the pool, on its first query).

    Nothing is taken before the actor runs: an actor that waits on something else first (Facebook, a
    throttling slot) holds no connection meanwhile, and a thread with nothing to ask the database takes none.
    An outage so surfaces at the actor's first query, and the message is retried as usual.
    """

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
