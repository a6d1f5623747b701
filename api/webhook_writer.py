"""Stores webhook requests in batches, from one thread per web process.

Facebook posts many requests at once. Storing each on its own costs a trip to the thread pool, a pooled
connection and an INSERT with its commit: far more than the HTTP exchange itself. The writer takes every
request that arrived while it wrote the previous batch and stores them with one INSERT, committed once; each
request is answered as soon as its batch is committed. Then the writer enqueues the new ones, several to an
ingestion message, since a send to Redis also costs more than the HTTP exchange; under load it fills the
message with the next batch's. Under light load a batch is one request, and nothing waits for company.
"""

from __future__ import annotations

import logging

import peewee
import redis
from dramatiq.errors import BrokerError

from airy_actors.actors.ingestion import ingest_webhook_events
from airy_actors.db import database
from airy_actors.ingestion import store_webhook_requests
from api.batch_writer import BatchWriter

logger = logging.getLogger(__name__)

MAX_BATCH = 64
# Requests of a batch that go into one ingestion message: a batch under load costs one send to Redis (about
# 200 µs of the web's CPU) or two; the worker's threads still share a large batch.
REQUESTS_PER_MESSAGE = 16

Stored = tuple[int, bool]  # a request's row id, and whether this batch stored it


class WebhookWriter(BatchWriter[bytes, Stored]):
    """Stores raw webhook requests in batches; :meth:`submit` returns once its request is committed.

    A request already stored before is answered as stored. When a batch cannot be stored, each of its
    requests gets the database's error (even if the commit took effect, a retry of the same request finds it
    stored and is answered 200).
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        super().__init__("webhook-writer", max_batch)
        self._unsent: list[int] = []

    def write(self, batch: list[bytes]) -> list[Stored | Exception]:
        return list(_store(batch))

    def after(self, results: list[Stored | Exception], more_waiting: bool) -> None:
        """Enqueues stored requests in full messages, and the rest once no batch waits.

        Under load another batch is already waiting, and its requests fill the message, so sends stay few; the
        rest goes as soon as the writer has nothing else to do. A crash before the send leaves it to the sweeper.
        """
        new = [result[0] for result in results if isinstance(result, tuple) and result[1]]
        unsent = self._unsent + new
        count = len(unsent) - len(unsent) % REQUESTS_PER_MESSAGE if more_waiting else len(unsent)
        self._unsent = unsent[count:]
        for start in range(0, count, REQUESTS_PER_MESSAGE):
            _enqueue(unsent[start : start + REQUESTS_PER_MESSAGE])


def _store(bodies: list[bytes]) -> list[Stored]:
    """Stores a batch on the connection that the writer keeps from one batch to the next.

    Taking a pooled connection for each batch cost a round trip to check it (``SELECT 1``), in the way of every
    batch. A kept connection that broke meanwhile (the database restarted) is replaced, and the batch stored
    again on the new one: requests that the failed attempt did commit are then found stored, not new, and the
    sweeper enqueues them.
    """
    kept = not database.is_closed()
    if not kept:
        database.connect()
    try:
        return store_webhook_requests(bodies)
    except (peewee.OperationalError, peewee.InterfaceError):
        database.close()
        if not kept:
            raise
    database.connect()
    return store_webhook_requests(bodies)


def _enqueue(webhook_event_ids: list[int]) -> None:
    try:
        ingest_webhook_events.send(webhook_event_ids)
    except (BrokerError, redis.RedisError):
        # Stored is enough: Facebook must not retry what we keep; the sweeper enqueues them.
        logger.warning("could not enqueue stored webhook requests", extra={"webhook_event_ids": webhook_event_ids})


writer = WebhookWriter()
