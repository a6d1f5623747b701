"""A real HTTP server on 127.0.0.1 that plays an integrator's webhook receiver.

It records every request it reads, and can be told to misbehave: answer 500 or 429 (with ``Retry-After``),
stall past the sender's timeout, refuse connections altogether (``down``), and recover.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedRequest:
    """One request as the receiver read it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: the receiver stalled and never answered
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return self.json["type"]

    @property
    def payload(self) -> dict[str, Any]:
        return self.json["payload"]

    def signed_with(self, key: str) -> bool:
        """Whether ``X-Airy-Content-Signature`` is the HMAC-SHA256 of the body under ``key``."""
        expected = hmac.new(key.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-airy-content-signature", ""), expected)


class Receiver:
    """The server. Use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._status = 200
        self._retry_after: str | None = None
        self._stall_s = 0.0
        self._release = threading.Event()
        self._in_flight = 0
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # --- behaviour ---------------------------------------------------------------------------------------

    def fail(self, status: int = 500, *, retry_after: str | None = None) -> None:
        """Answers every request with ``status`` (and ``Retry-After``) until :meth:`recover`."""
        with self._lock:
            self._status, self._retry_after = status, retry_after

    def stall(self, seconds: float = 30.0) -> None:
        """Reads requests but answers nothing for ``seconds``, until :meth:`recover`, or until the sender hangs up.

        A request counts as in flight (:attr:`max_in_flight`) while its connection is open.
        """
        with self._lock:
            self._release.clear()
            self._stall_s = seconds

    def recover(self) -> None:
        """Answers 200 again, releases stalled requests, and listens again if it was down."""
        with self._lock:
            self._status, self._retry_after, self._stall_s = 200, None, 0.0
            self._release.set()
        if self._server is None:
            self.start()

    def down(self) -> None:
        """Stops listening: connections are refused until :meth:`recover`."""
        self.stop()

    # --- what it saw ---------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def accepted(self, event_type: str | None = None) -> list[ReceivedRequest]:
        """The requests it answered with 2xx, in the order it read them, optionally of one event type."""
        return [r for r in self.requests if r.answered == 200 and (event_type is None or r.type == event_type)]

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver._handle(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self._release.set()
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            status, retry_after, stall_s = self._status, self._retry_after, self._stall_s
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            if stall_s:
                self._record(ReceivedRequest(handler.path, headers, body, None))
                deadline = time.monotonic() + stall_s
                # Until released, or until the sender gives up and closes the connection.
                while not self._release.wait(0.02) and time.monotonic() < deadline:
                    if _peer_closed(handler.connection):
                        break
                handler.close_connection = True
                return
            self._record(ReceivedRequest(handler.path, headers, body, status))
            answer = b'{"ok":true}' if status == 200 else b'{"error":"failing on purpose"}'
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            if retry_after is not None:
                handler.send_header("Retry-After", retry_after)
            handler.end_headers()
            handler.wfile.write(answer)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _peer_closed(connection: socket.socket) -> bool:
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
