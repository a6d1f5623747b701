"""Accepts ``messages.send`` requests in batches, from one thread per web process.

Accepting one send costs a trip to the thread pool, a pooled connection, a SELECT and an INSERT with its
commit, and an enqueue to Redis: far more than checking it. The writer takes every request that arrived while
it accepted the previous batch and accepts them together (airy_actors.sending.accept_sends: one SELECT, one
INSERT, one commit), enqueues their delivery as one message, then answers each request with its own message
or its own error. Under light load a batch is one request, and nothing waits for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading

import redis
from dramatiq.errors import BrokerError

from airy_actors.actors.sending import deliver_messages
from airy_actors.db import database
from airy_actors.models import Message
from airy_actors.sending import MAX_BATCH, SendRequest, accept_sends

logger = logging.getLogger(__name__)

_Waiting = tuple[SendRequest, asyncio.AbstractEventLoop, "asyncio.Future[Message]"]


class SendWriter:
    """One thread accepting the sends handed to :meth:`accept` in batches of up to ``max_batch``.

    Parameters:
      max_batch: the most sends accepted together, and so delivered together.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._waiting: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def accept(self, request: SendRequest) -> Message:
        """Returns the message stored ``pending`` for ``request`` once committed and handed to the worker.

        Raises:
          What airy_actors.sending.accept_send raises for this request (NotFound, BadRequest), or the
          database's error when it could not be stored.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Message] = loop.create_future()
        self._start()
        self._waiting.put((request, loop, done))
        return await done

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="send-writer", daemon=True)
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
                logger.exception("the send writer failed after accepting a batch")

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            with database.connection_context():
                results: list[Message | Exception] = accept_sends([request for request, _, _ in batch])
        except Exception as error:  # every request of the batch gets the error, and so its HTTP answer
            results = [error] * len(batch)
        accepted = [result.id for result in results if isinstance(result, Message)]
        if accepted:
            _enqueue(accepted)
        _settle(batch, results)


def _enqueue(message_ids: list[str]) -> None:
    try:
        deliver_messages.send(message_ids)
    except (BrokerError, redis.RedisError):
        # Stored is enough: the messages are pending and the sweeper enqueues them.
        logger.warning("could not enqueue sends", extra={"message_ids": message_ids})


def _settle(batch: list[_Waiting], results: list[Message | Exception]) -> None:
    """Completes the batch's futures, with one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Message], Message | Exception]]] = {}
    for (_, loop, done), result in zip(batch, results, strict=True):
        by_loop.setdefault(loop, []).append((done, result))

    def settle(outcomes: list[tuple[asyncio.Future[Message], Message | Exception]]) -> None:
        for done, result in outcomes:
            if done.cancelled():  # the client went away; what is stored stays stored
                continue
            if isinstance(result, Exception):
                done.set_exception(result)
            else:
                done.set_result(result)

    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (a server that stopped)
            loop.call_soon_threadsafe(settle, outcomes)


writer = SendWriter()
