"""One thread per web process that handles what concurrent requests hand it, in batches.

Some requests cost little to check and much to store: a trip to the thread pool, a pooled connection, an INSERT
and its commit, an enqueue to Redis. A writer takes every item that arrived while it handled the previous batch
and handles them together (one INSERT, one commit), answers each request with its own result, then does what
may follow the answer, at once or a little later (the enqueue, which the sweeper makes good after a crash).
Under light load a batch is one item, and nothing waits for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

_STOP = object()  # put in the queue by close()


class BatchWriter(Generic[Item, Result]):
    """Handles the items given to :meth:`submit` in batches of up to ``max_batch``, on a thread of its own.

    Subclasses say how a batch is written (:meth:`write`) and what follows the answers (:meth:`after`).

    Parameters:
      name: the thread's name.
      max_batch: the most items handled together.
      gather_s: while items come together, how long a batch waits after its first item for more to join it
        (as PostgreSQL's ``commit_delay`` with ``commit_siblings``): each batch costs a commit, which costs the
        database more than an item does. A lone item, after a batch of one, waits for nothing.
    """

    def __init__(self, name: str, max_batch: int, gather_s: float = 0.0) -> None:
        self.name = name
        self.max_batch = max_batch
        self.gather_s = gather_s
        self._last_size = 0
        self._waiting: queue.SimpleQueue[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future[Result]]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Starts the thread now, rather than at the first :meth:`submit` (for what :meth:`due_in` asks)."""
        self._start()

    async def submit(self, item: Item) -> Result:
        """Returns ``item``'s result once its batch is written, or raises its error."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Result] = loop.create_future()
        self._start()
        self._waiting.put((item, loop, done))
        return await done

    def write(self, batch: list[Item]) -> list[Result | Exception]:
        """Writes a batch on the writer's thread; returns each item's result or error, in order.

        An exception raised here is every item's error.
        """
        raise NotImplementedError

    def after(self, results: list[Result | Exception]) -> None:
        """Runs once the batch's requests are answered."""

    def due_in(self) -> float | None:
        """Seconds until :meth:`when_due` must run (zero or less: now); None while :meth:`after` left nothing."""
        return None

    def when_due(self) -> None:
        """Does what :meth:`after` left for later, once :meth:`due_in` says it is time."""

    def closing(self) -> None:
        """Runs on the writer's thread as it stops (see :meth:`close`): does what :meth:`after` left for later."""
        if self.due_in() is not None:
            self.when_due()

    def close(self, timeout_s: float) -> None:
        """Lets the thread finish what it was given, and what it left for later, then stop (a web that stops).

        Waits up to ``timeout_s`` for it. A later :meth:`submit` starts a new thread.
        """
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._waiting.put((_STOP, None, None))  # type: ignore[arg-type]
        thread.join(timeout_s)
        if thread.is_alive():
            logger.warning("the batch writer did not finish in time", extra={"writer": self.name})

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            wait = self.due_in()
            if wait is not None and wait <= 0:
                self._safely(self.when_due)
                continue
            try:
                first = self._waiting.get(timeout=wait)
            except queue.Empty:
                continue
            batch = [] if first[0] is _STOP else [first]
            stopping = not batch or self._gather(batch)
            if batch:
                self._write(batch)
            if stopping:
                self._safely(self.closing)
                return

    def _gather(self, batch: list[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future[Result]]]) -> bool:
        """Adds to ``batch`` what is waiting, and under load what arrives within ``gather_s`` of its start.

        Returns whether it met the sign to stop (see :meth:`close`).
        """
        deadline = time.monotonic() + (self.gather_s if self._last_size > 1 else 0.0)
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                item = self._waiting.get(timeout=left) if left > 0 else self._waiting.get_nowait()
            except queue.Empty:
                return False
            if item[0] is _STOP:
                return True
            batch.append(item)
        return False

    def _write(self, batch: list[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future[Result]]]) -> None:
        self._last_size = len(batch)
        try:
            results = self.write([item for item, _, _ in batch])
        except Exception as error:  # every request of the batch gets the error, and so its HTTP answer
            results = [error] * len(batch)
        _settle(batch, results)
        # Lets the event loop, woken by _settle, take the GIL and send the answers now, rather than once this
        # thread has built the next batch's statement: clients then post again sooner (bench/webhook_acceptance.py).
        time.sleep(0)
        self._safely(self.after, results)

    def _safely(self, step: Callable[..., None], *args: object) -> None:
        try:
            step(*args)
        except Exception:  # the thread must outlive anything: every later request depends on it
            logger.exception("the batch writer failed after answering", extra={"writer": self.name})


def _settle(
    batch: list[tuple[Item, asyncio.AbstractEventLoop, asyncio.Future[Result]]],
    results: list[Result | Exception],
) -> None:
    """Completes the batch's futures, with one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Result | Exception]]] = {}
    for (_, loop, done), result in zip(batch, results, strict=True):
        by_loop.setdefault(loop, []).append((done, result))

    def settle(outcomes: list[tuple[asyncio.Future[Result], Result | Exception]]) -> None:
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
