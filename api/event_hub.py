"""The event hub: one reader of the outbox per web process, feeding every event stream client of the process.

A single task polls the outbox every :data:`POLL_INTERVAL_S` (off the event loop, in the thread pool), renders
each event once into its Server-Sent Events frame, and hands each batch to every connected client's buffer.
200 clients at 1,000 events a second so cost one database read and one rendering per batch, and one write per
client per batch. A client whose buffer holds more than its bound (``AIRY_STREAM_BUFFER_EVENTS``) is
disconnected, counted and logged, rather than buffered without bound: it reconnects with ``Last-Event-ID``.

A client registers before it replays what it missed: from then on the hub buffers every batch past the position
it answered at registration, so the client replays up to that position from the database and then goes on
from its buffer, with no gap and nothing twice (:mod:`api.routes.event_stream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from airy_actors import event_stream, metrics, stream_listeners
from airy_actors.errors import Unavailable
from airy_actors.event_stream import Batch, Position
from api.database import in_database

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
IDLE_INTERVAL_S = 1.0  # without clients only the outbox's head is followed, and less often
BATCH_LIMIT = 1_000
RETRY_AFTER_FAILURE_S = 1.0
READY_TIMEOUT_S = 10.0


class StreamClient:
    """One connected client's buffer of batches, bounded in events.

    Parameters:
      limit: the most events the buffer holds; a batch that would pass it disconnects the client. An empty
        buffer takes any batch, so that a bound below the hub's batch (:data:`BATCH_LIMIT`) drops only clients
        that fell behind.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.batches: deque[Batch] = deque()
        self.pending = 0
        self.wakeup = asyncio.Event()
        self.dropped = False
        self.on_drop: Callable[[], None] | None = None

    def offer(self, batch: Batch) -> bool:
        """Buffers ``batch``; False, buffering nothing, when the buffer would hold more than its limit."""
        if self.pending and self.pending + len(batch) > self.limit:
            return False
        self.batches.append(batch)
        self.pending += len(batch)
        self.wakeup.set()
        return True

    def take(self) -> Batch | None:
        """The oldest buffered batch, out of the buffer; None when it is empty."""
        if not self.batches:
            self.wakeup.clear()
            return None
        batch = self.batches.popleft()
        self.pending -= len(batch)
        return batch

    def drop(self) -> None:
        self.dropped = True
        self.wakeup.set()
        if self.on_drop is not None:
            self.on_drop()


class EventHub:
    """This process's reader of the outbox and its clients.

    Parameters:
      buffer_events: each client's bound (``AIRY_STREAM_BUFFER_EVENTS``).
      poll_interval_s: the pause between reads that found nothing more to read.
    """

    def __init__(self, *, buffer_events: int, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.buffer_events = buffer_events
        self.poll_interval_s = poll_interval_s
        self.position: Position | None = None  # of the last event handed to the clients; None before the first read
        self.clients: set[StreamClient] = set()
        self._ready = asyncio.Event()
        self._arrived = asyncio.Event()  # a client registered: an idle reader starts reading at once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts the reader task, on the running loop (the app's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        """Stops the reader and disconnects every client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            client.drop()

    async def ready(self) -> None:
        """Waits until the hub knows the outbox's position.

        Raises:
          Unavailable: when it has not read it within :data:`READY_TIMEOUT_S` (the database is away).
        """
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await self._ready.wait()
        except TimeoutError:
            raise Unavailable("the event stream cannot read the database; try again") from None

    def register(self) -> tuple[StreamClient, Position]:
        """Adds a client; every batch past the returned position goes to its buffer. Call it once :meth:`ready`."""
        assert self.position is not None
        client = StreamClient(self.buffer_events)
        self.clients.add(client)
        metrics.stream_clients.inc()
        self._arrived.set()
        return client, self.position

    def unregister(self, client: StreamClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            metrics.stream_clients.dec()

    async def _run(self) -> None:
        while True:
            try:
                more = await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the position, try again
                logger.warning("event hub: could not read the outbox", extra={"error": type(exc).__name__})
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)
                continue
            if not more:
                await self._pause()

    async def _pause(self) -> None:
        if self.clients:
            await asyncio.sleep(self.poll_interval_s)
            return
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_INTERVAL_S):
                await self._arrived.wait()

    async def _poll(self) -> bool:
        """Reads once; True when more events are waiting already."""
        if self.position is None:
            self.position = await in_database(event_stream.head)
            self._ready.set()
            return False
        if not self.clients:  # nobody to feed: only follow the outbox's head, not its contents
            position = await in_database(event_stream.head)
            if not self.clients:  # else a client registered meanwhile at the old position: read from there
                self.position = position
            return False
        batch = await in_database(_read_for_clients, self.position, BATCH_LIMIT)
        if batch is None:
            return False
        # No await from here to the end: a client registering meanwhile gets every batch past the position it saw.
        self.position = batch.last
        for client in list(self.clients):
            if not client.offer(batch):
                self._drop_slow(client)
        return len(batch) == BATCH_LIMIT

    def _drop_slow(self, client: StreamClient) -> None:
        self.unregister(client)
        metrics.stream_slow_disconnects.inc()
        logger.warning(
            "event stream client disconnected: it read slower than events came",
            extra={"buffered_events": client.pending, "limit": client.limit},
        )
        client.drop()


def _read_for_clients(position: Position, limit: int) -> Batch | None:
    # Clients are connected: keep the listener record fresh, so that every event type keeps being written.
    stream_listeners.record_listener()
    return event_stream.read_after(position, limit)
