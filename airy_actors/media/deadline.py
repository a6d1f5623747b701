"""A deadline for a whole fetch, not for each read.

httpx's timeouts bound each network operation, so a server that drips a byte every few seconds would never trip
them. A :class:`Deadline` gives every request the time left as its timeouts, and while a body streams, a timer
shuts the response's socket down at the deadline: a read blocked on the socket returns at once, and the reader
sees that the deadline has passed. The body is cut at the deadline exactly; before it, a request whose connect
and headers are both slow can overrun by up to the time that was left when it was sent, since each of httpx's
timeouts gets that whole time.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

# A request made with no time left still needs a positive timeout: it then fails at once, as a timeout.
_LEAST_SECONDS = 0.001


class Deadline:
    """A point in time by which an operation must have ended.

    Parameters:
      duration_ms: how long from now.
    """

    def __init__(self, duration_ms: int) -> None:
        self.duration_ms = duration_ms
        self._ends_at = time.monotonic() + duration_ms / 1000

    @property
    def remaining_s(self) -> float:
        """Seconds left, 0 once passed."""
        return max(self._ends_at - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._ends_at

    def timeout(self) -> httpx.Timeout:
        """Returns httpx timeouts that each end by the deadline."""
        return httpx.Timeout(max(self.remaining_s, _LEAST_SECONDS))

    @contextmanager
    def cutting(self, response: httpx.Response) -> Iterator[None]:
        """Shuts ``response``'s connection down if the block is still running at the deadline.

        A response without a socket (``httpx.MockTransport``) is left alone: its reader still checks
        :attr:`expired` between chunks.

        Parameters:
          response: a streamed response, whose body the block reads.
        """
        timer = threading.Timer(self.remaining_s, _shut_down, args=(response,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


def _shut_down(response: httpx.Response) -> None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return
    try:
        # The plain socket's shutdown, also under TLS: it wakes a blocked read without touching the TLS state
        # that the reading thread is using.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the fetch ended as the timer fired
