"""Stores webhook requests in batches, from one thread per web process.

Facebook posts many requests at once. Storing each on its own costs a trip to the thread pool, a pooled
connection and an INSERT with its commit: far more than the HTTP exchange itself. The writer takes every
request that arrived while it wrote the previous batch and stores them with one INSERT, committed once; each
request is answered as soon as its batch is committed. Then the writer enqueues the new ones, several to an
ingestion message, since a send to Redis also costs more than the HTTP exchange. Under light load a batch is
one request, and nothing waits for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading

import redis
from dramatiq.errors import BrokerError

from airy_actors.actors.ingestion import ingest_webhook_events
from airy_actors.db import database
from airy_actors.ingestion import store_webhook_requests

logger = logging.getLogger(__name__)

MAX_BATCH = 64
# Requests of a batch that go into one ingestion message: the worker's threads still share a large batch.
REQUESTS_PER_MESSAGE = 8

_Waiting = tuple[bytes, asyncio.AbstractEventLoop, asyncio.Future[None]]


class WebhookWriter:
    """One thread storing the requests handed to :meth:`store` in batches of up to ``max_batch``.

    Parameters:
      max_batch: the most requests one INSERT stores.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._waiting: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def store(self, raw: bytes) -> None:
        """Returns once ``raw`` is committed (stored now, or already stored before).

        Raises:
          The database's error when its batch could not be stored (even if the commit took effect, a retry
          of the same request finds it stored and is answered 200).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._start()
        self._waiting.put((raw, loop, done))
        await done

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # the thread must outlive anything: every later request depends on it
                logger.exception("the webhook writer failed after storing a batch")

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            with database.connection_context():
                stored = store_webhook_requests([raw for raw, _, _ in batch])
        except Exception as error:  # every request of the batch gets the error, and so its HTTP answer
            _settle(batch, error)
            return
        _settle(batch, None)
        new = [webhook_event_id for webhook_event_id, is_new in stored if is_new]
        for start in range(0, len(new), REQUESTS_PER_MESSAGE):
            _enqueue(new[start : start + REQUESTS_PER_MESSAGE])


def _settle(batch: list[_Waiting], error: BaseException | None) -> None:
    """Completes the batch's futures, with one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, loop, done in batch:
        by_loop.setdefault(loop, []).append(done)

    def settle(futures: list[asyncio.Future[None]]) -> None:
        for done in futures:
            if done.cancelled():  # the client went away; what is stored stays stored
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (a server that stopped)
            loop.call_soon_threadsafe(settle, futures)


def _enqueue(webhook_event_ids: list[int]) -> None:
    try:
        ingest_webhook_events.send(webhook_event_ids)
    except (BrokerError, redis.RedisError):
        # Stored is enough: Facebook must not retry what we keep; the sweeper enqueues them.
        logger.warning("could not enqueue stored webhook requests", extra={"webhook_event_ids": webhook_event_ids})


writer = WebhookWriter()
