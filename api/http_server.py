"""How uvicorn serves the API so that hostile or broken clients cannot hurt it: every limit in one place.

The HTTP implementation is httptools (llhttp, in C), chosen deliberately: the webhook serves thousands of
requests a second, and h11 (pure Python) would cost several times its CPU per request. httptools bounds
nothing, though: it concatenates the pieces of a header line as they arrive, however long the line, and uvicorn
arms no timer before a request's headers are in. ``GuardedHttpProtocol`` adds what is missing:

- the head of a request (request line and headers) over ``MAX_HEADER_BYTES`` is answered 431 and the connection
  closed. The bytes are counted before httptools sees them, so a 64 MiB header line costs one read, not 64 MiB;
- a head that is not complete ``HEADER_TIMEOUT_MS`` after the connection opened (or, on a kept-alive connection,
  after its first byte), or a body that is not complete ``BODY_TIMEOUT_MS`` after its head, is answered 408
  (unless an answer is already under way) and the connection closed;
- a connection beyond ``MAX_CONCURRENCY`` open ones is answered 503 at once and closed, before anything of it is
  read. Slow clients hold at most that many connections, each with a head of at most ``MAX_HEADER_BYTES`` or a
  body (uvicorn stops reading once 64 KiB wait for the app; the API's endpoints take 1 MiB at most);
- an event stream (``ENDLESS_PATHS``) is cut as soon as the server stops, rather than holding the stop for its
  graceful timeout, and can drop its connection at once (``ABORT_EXTENSION``) when its client stops reading.

The common request (a whole request in one read, on a kept-alive connection) costs a few attribute updates and
no timer: the deadlines are armed only when a read ends inside a head or a body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_MS = 10_000
BODY_TIMEOUT_MS = 30_000
# Four times the 64 connections at which bench/webhook_acceptance.py measures the webhook; each process of
# `web --workers N` has its own.
MAX_CONCURRENCY = 256
KEEP_ALIVE_TIMEOUT_S = 5
GRACEFUL_SHUTDOWN_TIMEOUT_S = 10
# Responses that never end by themselves: a stopping server closes them at once rather than waiting its
# graceful timeout for them; their clients reconnect (to another web) with Last-Event-ID.
ENDLESS_PATHS = frozenset({"/events.stream"})
# The scope extension through which such a response drops its connection at once (a client that stopped reading):
# ``scope["extensions"][ABORT_EXTENSION]["abort"]()``. Ending the response would wait, for ever, until the client
# took what its socket holds.
ABORT_EXTENSION = "airy.connection.abort"


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server.

    Parameters:
      max_header_bytes: the largest head (request line and headers) that is served.
      header_timeout_ms: how long a head may take, from the connection's opening or the head's first byte.
      body_timeout_ms: how long a body may take, from the end of its head.
      max_concurrency: connections open at once; those beyond are answered 503.
    """

    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout_ms: int = HEADER_TIMEOUT_MS
    body_timeout_ms: int = BODY_TIMEOUT_MS
    max_concurrency: int = MAX_CONCURRENCY


DEFAULT_LIMITS = ServerLimits()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size limit on heads, deadlines on heads and bodies, and a bound on
    connections.

    Parameters:
      limits: the limits of this server; uvicorn passes the others.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        limits: ServerLimits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_limit = limits.max_header_bytes
        self._head_timeout_s = limits.header_timeout_ms / 1000
        self._body_timeout_s = limits.body_timeout_ms / 1000
        self._max_connections = limits.max_concurrency
        # Bytes the current head may still take, counted on reads that begin outside a body: below the limit, a
        # head is being read.
        self._head_room = self._head_limit
        self._in_body = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            self._refuse(503, "the server has too many connections open; try again")
            return
        self._deadline = self.loop.call_later(self._head_timeout_s, self._deadline_passed)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The ASGI task is scheduled, not started: the scope can still be given the extension.
        if self.scope["path"] in ENDLESS_PATHS:
            self.scope.setdefault("extensions", {})[ABORT_EXTENSION] = {"abort": self._abort}

    def _abort(self) -> None:
        """Drops the connection now; its response, left unfinished, is one whose client went away."""
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.transport.abort()

    def shutdown(self) -> None:
        """The server stops: idle connections close, answers under way finish, endless ones are cut now."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and cycle.scope["path"] in ENDLESS_PATHS:
            self.transport.abort()  # what a full socket still holds is dropped: the client resumes from its id
            return
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        # The hot path, which a whole request in one read takes: inline, and no timer.
        if not self._in_body:
            room = self._head_room - len(data)
            if room < 0:
                self._receive_past_head_room(memoryview(data))
                return
            self._head_room = room
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a head ended in this read: its deadline ends, its body's may begin
            self._in_body = self.cycle.more_body
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        if self._deadline is None and (self._in_body or self._head_room < self._head_limit):
            self._arm_deadline()

    def _receive_past_head_room(self, data: memoryview) -> None:
        """Feeds the parser no more than the head may still take, and the rest only once the head has ended.

        A read that begins in a head and goes past its room is rare: a head too large, or a head followed in the
        same read by a large body or by pipelined requests.
        """
        room = self._head_room
        self._head_room = 0
        cycle = self.cycle
        super().data_received(data[:room])  # type: ignore[arg-type]
        if self.transport.is_closing():
            return
        if self.cycle is cycle:
            self._refuse(431, f"the request headers are larger than {self._head_limit} bytes")
            return
        self._in_body = self.cycle.more_body
        self._cancel_deadline()
        # The class's own, so that a subclass sees each read once; the rest goes on as a read of its own.
        GuardedHttpProtocol.data_received(self, data[room:])  # type: ignore[arg-type]

    def on_message_complete(self) -> None:
        self._in_body = False
        self._head_room = self._head_limit
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().on_message_complete()

    # Deadlines: one at a time, for the head being read or the body being read.

    def _arm_deadline(self) -> None:
        if not self.transport.is_closing():
            delay = self._body_timeout_s if self._in_body else self._head_timeout_s
            self._deadline = self.loop.call_later(delay, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # uvicorn stopped reading (the app has not taken the body yet, or a pipelined request waits its turn):
            # the client is not the one who is late.
            self._arm_deadline()
            return
        if self._in_body:
            self._refuse(408, f"the request body did not arrive within {self._body_timeout_s:g} s")
        else:
            self._refuse(408, f"the request headers did not arrive within {self._head_timeout_s:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answers ``status`` with ``{"message": ...}``, unless an answer is already under way, and closes.

        Within a body, the cycle is the current request's; within a head, it is the previous request's, still
        being answered if it is not complete.
        """
        cycle = self.cycle
        if self._in_body:
            answerable = not cycle.response_started
        else:
            answerable = cycle is None or cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's answer, if it comes, goes nowhere
            cycle.message_event.set()
        logger.info("connection refused", extra={"status": status, "reason": message, "client": self.client})
        if answerable:
            self.transport.write(self._response(status, message))
        self.transport.close()

    def _response(self, status: int, message: str) -> bytes:
        body = json.dumps({"message": message}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body


def server_options(
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    header_timeout_ms: int = HEADER_TIMEOUT_MS,
    body_timeout_ms: int = BODY_TIMEOUT_MS,
    max_concurrency: int = MAX_CONCURRENCY,
) -> dict[str, Any]:
    """Everything uvicorn needs to serve the API, beside the app, host, port (and workers).

    ``uvicorn.run(app, host=..., port=..., **server_options())`` or ``uvicorn.Config(app, **server_options())``.
    The defaults are the product's limits; tests pass smaller ones.

    Returns:
      The keyword arguments of ``uvicorn.Config``: the protocol, its limits, timeouts, and logging left to us.
    """
    limits = ServerLimits(max_header_bytes, header_timeout_ms, body_timeout_ms, max_concurrency)
    # The protocol crosses to the processes of `web --workers N` pickled, by name: a partial of it pickles.
    http = GuardedHttpProtocol if limits == DEFAULT_LIMITS else functools.partial(GuardedHttpProtocol, limits=limits)
    return {
        "http": http,
        "ws": "none",  # the API has no WebSocket, and an upgraded connection would escape the deadlines
        # uvicorn answers 503 to a request when as many connections as this are open, its own included.
        "limit_concurrency": max_concurrency + 1,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT_S,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_TIMEOUT_S,
        "log_config": None,
        "access_log": False,
    }
