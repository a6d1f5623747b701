"""A server guarded by api.http_server, and a raw-socket HTTP/1.1 client that can misbehave."""

from __future__ import annotations

import dataclasses
import functools
import json
import select
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.http_server import GuardedHttpProtocol, ServerLimits, server_options
from tests.support import wait_until


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


def tiny_app() -> Starlette:
    """``GET /`` answers ``{"ok": true}``; ``POST /echo`` reads the body and answers its length."""
    return Starlette(routes=[Route("/", ok), Route("/echo", echo, methods=["POST"])])


class GuardedServer:
    """``app`` served by uvicorn with ``server_options(**limits)`` on 127.0.0.1, in a daemon thread.

    Parameters:
      protocol: a subclass of GuardedHttpProtocol to serve with instead (to observe what it reads).
    """

    def __init__(self, app: Any, protocol: type[GuardedHttpProtocol] | None = None, **limits: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        options = {**server_options(**limits), "timeout_graceful_shutdown": 2}
        if protocol is not None:
            options["http"] = functools.partial(protocol, limits=ServerLimits(**limits))
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def connections(self) -> int:
        """Connections the server holds open now."""
        return len(self.server.server_state.connections)

    def start(self) -> GuardedServer:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, message="uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def request(
    method: str = "GET", path: str = "/", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of an HTTP/1.1 request; Content-Length is added when there is a body."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket) -> Response:
    """Reads one response (with a Content-Length) from ``sock``, and not a byte of the next."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # byte by byte: pipelined answers follow, and must stay in the socket
        if not byte:
            raise ConnectionError(f"closed before a whole head: {head!r}")
        head += byte
    status_line, *header_lines = head.decode("latin-1").strip().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("closed within the body")
        body += chunk
    return Response(int(status_line.split()[1]), headers, body)


def parse_response(data: bytes) -> Response:
    """The response at the start of ``data`` (all a connection sent)."""
    reader = _BytesSocket(data)
    return read_response(reader)  # type: ignore[arg-type]


class _BytesSocket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def is_closed(sock: socket.socket, timeout: float = 2.0) -> bool:
    """Whether the server has closed ``sock`` (end of stream or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes; a reset ends it too."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def trickle(sock: socket.socket, pieces: list[bytes], interval: float) -> tuple[float, bytes]:
    """Sends ``pieces`` one by one, ``interval`` seconds apart, until the server answers or closes.

    Returns:
      The seconds from the first piece until the server answered or closed, and all it sent.
    """
    start = time.monotonic()
    for piece in pieces:
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start, b""
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            return time.monotonic() - start, read_until_closed(sock)
    raise AssertionError(f"the server was still reading after {time.monotonic() - start:.1f} s")
