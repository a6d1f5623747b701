"""Real TCP servers on 127.0.0.1 that play webhook receivers, well-behaved or not, byte by byte."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

Behaviour = Callable[[socket.socket, threading.Event], None]


class ScriptedServer:
    """Accepts connections on 127.0.0.1 and runs ``behaviour`` on each, in a thread of its own.

    Parameters:
      tls: wrap accepted connections in TLS with this context (the SNI each client sent is kept in ``sni``).
    """

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.connections = 0
        self.sni: list[str | None] = []
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # accept() wakes up to see that the server is stopping
        self.port = self.listener.getsockname()[1]
        if tls is not None:
            tls.sni_callback = lambda _socket, name, _context: self.sni.append(name)
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            connection.settimeout(10)  # accepted sockets inherit no timeout from the listener; set one
            self.behaviour(connection, self.stopping)
        except OSError:
            pass  # the client went away: that is what several tests are about
        finally:
            connection.close()


def read_request(connection: socket.socket) -> bytes:
    """Reads one request with its ``Content-Length`` body; returns its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += connection.recv(65536)
    return head


def answer(status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None) -> Behaviour:
    """Answers every request at once."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())

    def behave(connection: socket.socket, stopping: threading.Event) -> None:
        while read_request(connection):
            head = f"HTTP/1.1 {status} Whatever\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            connection.sendall(head.encode() + body)

    return behave


def drip(prefix: bytes, *, every_s: float, total: bytes) -> Behaviour:
    """Reads a request, sends ``prefix`` at once, then ``total`` one byte every ``every_s`` seconds."""

    def behave(connection: socket.socket, stopping: threading.Event) -> None:
        read_request(connection)
        connection.sendall(prefix)
        for index in range(len(total)):
            if stopping.wait(every_s):
                return
            connection.sendall(total[index : index + 1])

    return behave
