"""Stores webhook requests in batches, from one thread per web process.

Facebook posts many requests at once. Storing each on its own costs a trip to the thread pool, a pooled
connection and an INSERT with its commit: far more than the HTTP exchange itself. The writer takes every
request that arrived while it wrote the previous batch and stores them with one INSERT, committed once; each
request is answered as soon as its batch is committed. Under light load a batch is one request, and nothing
waits for company.

The stored requests are then enqueued for ingestion, many to a message, at most a few milliseconds after they
were answered. A send to Redis costs the web more than an HTTP exchange, so sending one for each batch cut
the rate at which the web accepted requests sharply (bench/webhook_acceptance.py; figures in the README).

While the database is unreachable, requests are appended to the local spool (:mod:`airy_actors.spool`, fsync'd
before the answer) and answered 200, so that Facebook never sees an outage; new requests keep going there until
the spool is drained into the database, in order, by this same thread. Past ``AIRY_SPOOL_MAX_BYTES`` the
webhook answers 503.
"""

from __future__ import annotations

import logging
import time

import peewee
import redis
from dramatiq.errors import BrokerError
from playhouse.pool import MaxConnectionsExceeded

from airy_actors.config import get_settings
from airy_actors.db import database
from airy_actors.spool import Spool
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
# Under load, how long a batch waits for more requests after its first (see BatchWriter): a fraction of what its
# INSERT and commit take, it raised the rate at 16 connections (bench/webhook_acceptance.py).
GATHER_S = 0.00015

Stored = tuple[int, bool]  # a request's row id, and whether this batch stored it
SPOOLED: Stored = (0, False)  # kept in the spool, to be stored once the database answers
# Errors that say the database cannot be reached (as opposed to a request it refuses).
OUTAGE_ERRORS = (peewee.OperationalError, peewee.InterfaceError, MaxConnectionsExceeded)
DRAIN_RETRY_S = 1.0  # while spooling, how often the database is tried again
SPOOL_CHECK_S = 5.0  # otherwise, how often the spool is looked at (left by a web that crashed while spooling)


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
        self._spool: Spool | None = None
        self.spooling = False
        self._next_spool_check = 0.0  # time.monotonic() of the next drain, or of the next look at the spool

    @property
    def spool(self) -> Spool:
        """The spool of this web process (its directory is shared with the others on the host)."""
        if self._spool is None:
            settings = get_settings()
            self._spool = Spool(settings.data_dir / "spool", settings.spool_max_bytes)
        return self._spool

    def write(self, batch: list[bytes]) -> list[Stored | Exception]:
        if not self.spooling:
            try:
                return list(_store(batch))
            except OUTAGE_ERRORS as error:
                logger.warning(
                    "the database is unreachable: spooling webhook requests", extra={"error": type(error).__name__}
                )
                self.spooling = True
                self._next_spool_check = time.monotonic() + DRAIN_RETRY_S
        self.spool.append(batch)  # SpoolFull (503) past AIRY_SPOOL_MAX_BYTES
        return [SPOOLED] * len(batch)

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
        now = time.monotonic()
        spool_in = self._next_spool_check - now
        return min(self._unsent_since + ENQUEUE_WITHIN_S - now, spool_in) if self._unsent else spool_in

    def when_due(self) -> None:
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            _enqueue(unsent)
        if time.monotonic() >= self._next_spool_check:
            self._drain_spool()

    def _drain_spool(self) -> None:
        """Moves what the spool holds into the database, in order; stops spooling once it is empty."""
        if not self.spooling:
            self._next_spool_check = time.monotonic() + SPOOL_CHECK_S
            if not self.spool.pending():
                return
            self.spooling = True  # left by a web that stopped or crashed while spooling: drain it first
        try:
            drained = self.spool.drain(self._store_drained, batch=REQUESTS_PER_MESSAGE)
        except OUTAGE_ERRORS:
            database.close()
            self._next_spool_check = time.monotonic() + DRAIN_RETRY_S
            return
        if drained:
            logger.info("drained spooled webhook requests into the database", extra={"requests": drained})
        if self.spool.pending():  # another web is draining, or a writer elsewhere is still appending
            self._next_spool_check = time.monotonic() + DRAIN_RETRY_S
            return
        self.spooling = False
        self._next_spool_check = time.monotonic() + SPOOL_CHECK_S
        logger.info("the spool is empty: storing webhook requests in the database again")

    def _store_drained(self, bodies: list[bytes]) -> None:
        _enqueue([row_id for row_id, new in _store(bodies) if new])

    def closing(self) -> None:
        """Enqueues what waits, gives the kept connection back to the pool, and lets go of the spool segment."""
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            _enqueue(unsent)
        if self._spool is not None:
            self._spool.close()
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
