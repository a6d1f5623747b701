"""A Server-Sent Events client for the tests: reads ``GET /events.stream`` in a thread, keeping what it saw."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StreamEvent:
    id: str
    type: str
    data: str
    received_at: float = field(default_factory=time.monotonic)

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.data)


class SseClient:
    """Connects to the stream and parses it as a browser's EventSource would, until :meth:`close`.

    Parameters:
      base_url: the app's URL.
      last_event_id: sent as ``Last-Event-ID`` when set.
      token: sent as a Bearer token when set.
    """

    def __init__(self, base_url: str, *, last_event_id: str | None = None, token: str | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(10, read=None))
        self.headers = headers
        self.status: int | None = None
        self.content_type: str | None = None
        self.events: list[StreamEvent] = []
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._closing = False
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> SseClient:
        self._thread.start()
        assert self.opened.wait(10), "the stream did not answer"
        return self

    def close(self) -> None:
        """Cuts the connection, as a client that goes away does, and waits for the reader to stop."""
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)  # wakes the reading thread; closing alone would not
        self._thread.join(timeout=5)
        self.client.close()

    def ids(self) -> list[int]:
        return [int(event.id) for event in self.events]

    def of_type(self, event_type: str) -> list[StreamEvent]:
        return [event for event in self.events if event.type == event_type]

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/events.stream", headers=self.headers) as response:
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.status = response.status_code
                self.content_type = response.headers.get("content-type")
                self.opened.set()
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if line == "":
                        if "data" in fields:
                            self.events.append(
                                StreamEvent(fields.get("id", ""), fields.get("event", "message"), fields["data"])
                            )
                        fields = {}
                    elif line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except (httpx.HTTPError, RuntimeError):
            if not self._closing:
                raise
        finally:
            self.opened.set()
            self.ended.set()


class StalledReader:
    """A client that asks for the stream and then never reads: its socket's window stays tiny and full."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.connect((host, int(port)))
        self.socket.sendall(f"GET /events.stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())

    def is_closed_by_server(self, timeout: float = 10.0) -> bool:
        """Reads everything now, fast; True once the server has closed the connection (end of file)."""
        self.socket.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.socket.recv(1 << 20):
                    return True
        except (ConnectionResetError, TimeoutError):
            return True
        return False

    def close(self) -> None:
        self.socket.close()
