"""Stores webhook requests in batches, from one thread per web process.

Facebook posts many requests at once. Storing each on its own costs a trip to the thread pool, a pooled
connection and an INSERT with its commit: far more than the HTTP exchange itself. The writer takes every
request that arrived while it wrote the previous batch and stores them with one INSERT, committed once; each
request is answered as soon as its batch is committed. Under light load a batch is one request, and nothing
waits for company.

The stored requests are then enqueued for ingestion, many to a message, at most a few milliseconds after they
were answered. A send to Redis costs the web more than an HTTP exchange (130 µs of CPU, and about a
millisecond of the writer's time when the web is busy), so sending one for each batch halved the rate at
which the web accepted requests.
"""

from __future__ import annotations

import logging
import time

import peewee
import redis
from dramatiq.errors import BrokerError

from airy_actors.db import database
from airy_actors.webhook_requests import store_webhook_requests
from api.batch_writer import BatchWriter
from workers.ingestion import ingest_webhook_requests

logger = logging.getLogger(__name__)

MAX_BATCH = 64
# The most stored requests named by one ingestion message, and the longest that a stored request waits to be
# enqueued with others: under load a message names every request of a few batches; with light traffic each
# request is enqueued on its own, 5 ms after its answer.
REQUESTS_PER_MESSAGE = 64
ENQUEUE_WITHIN_S = 0.005
# Under load, how long a batch waits for more requests after its first (see BatchWriter): 150 µs raised the
# rate at 16 connections by 4-5% (bench/webhook_acceptance.py), its INSERT and commit taking 0.5 to 1 ms.
GATHER_S = 0.00015

Stored = tuple[int, bool]  # a request's row id, and whether this batch stored it


class WebhookWriter(BatchWriter[bytes, Stored]):
    """Stores raw webhook requests in batches; :meth:`submit` returns once its request is committed.

    A request already stored before is answered as stored. When a batch cannot be stored, each of its
    requests gets the database's error (even if the commit took effect, a retry of the same request finds it
    stored and is answered 200).
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        super().__init__("webhook-writer", max_batch, gather_s=GATHER_S)
        self._unsent: list[int] = []
        self._unsent_since = 0.0  # when the oldest of the unsent was answered (time.monotonic)

    def write(self, batch: list[bytes]) -> list[Stored | Exception]:
        return list(_store(batch))

    def after(self, results: list[Stored | Exception]) -> None:
        """Enqueues the newly stored requests once they fill a message; the rest waits, at most 5 ms.

        A crash before the send leaves them to the sweeper.
        """
        new = [result[0] for result in results if isinstance(result, tuple) and result[1]]
        if not new:
            return
        if not self._unsent:
            self._unsent_since = time.monotonic()
        self._unsent += new
        while len(self._unsent) >= REQUESTS_PER_MESSAGE:
            full, self._unsent = self._unsent[:REQUESTS_PER_MESSAGE], self._unsent[REQUESTS_PER_MESSAGE:]
            _enqueue(full)

    def due_in(self) -> float | None:
        return self._unsent_since + ENQUEUE_WITHIN_S - time.monotonic() if self._unsent else None

    def when_due(self) -> None:
        unsent, self._unsent = self._unsent, []
        _enqueue(unsent)

    def closing(self) -> None:
        """Enqueues what waits, and gives the kept connection back to the pool."""
        super().closing()
        if not database.is_closed():
            database.close()


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


def _enqueue(webhook_request_ids: list[int]) -> None:
    try:
        ingest_webhook_requests.send(webhook_request_ids)
    except (BrokerError, redis.RedisError):
        # Stored is enough: Facebook must not retry what we keep; the sweeper enqueues them.
        logger.warning("could not enqueue stored webhook requests", extra={"webhook_request_ids": webhook_request_ids})


writer = WebhookWriter()
