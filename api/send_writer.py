"""Accepts ``messages.send`` requests in batches, from one thread per web process (see api.batch_writer).

Accepting one send costs a trip to the thread pool, a pooled connection, a SELECT and an INSERT with its
commit, and an enqueue to Redis: far more than checking it. The writer accepts the requests that arrived
together in one go (airy_actors.sending.accept_sends: one SELECT, one INSERT, one commit), answers each with
its own message or its own error, and enqueues the delivery of the accepted ones as one message.
"""

from __future__ import annotations

import logging

import redis
from dramatiq.errors import BrokerError

from airy_actors.db import database
from airy_actors.models import Message
from airy_actors.sending import MAX_BATCH, SendRequest, accept_sends
from api.batch_writer import BatchWriter
from workers.sending import deliver_messages

logger = logging.getLogger(__name__)


class SendWriter(BatchWriter[SendRequest, Message]):
    """Stores sends ``pending`` in batches; :meth:`submit` returns the stored message once committed.

    It raises what airy_actors.sending.accept_send raises for this request (NotFound, BadRequest), or the
    database's error when the request could not be stored.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        super().__init__("send-writer", max_batch)

    def write(self, batch: list[SendRequest]) -> list[Message | Exception]:
        with database.connection_context():
            return accept_sends(batch)

    def after(self, results: list[Message | Exception]) -> None:
        accepted = [result.id for result in results if isinstance(result, Message)]
        if not accepted:
            return
        try:
            deliver_messages.send(accepted)
        except (BrokerError, redis.RedisError):
            # Stored is enough: the messages are pending and the sweeper enqueues them.
            logger.warning("could not enqueue sends", extra={"message_ids": accepted})


writer = SendWriter()
