"""A real HTTP server on 127.0.0.1, in a thread, standing for Facebook's CDN: it serves files, errors, redirect
chains, a slow drip and a huge stream, and counts the body bytes it managed to send on each path."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024


class SourceServer(ThreadingHTTPServer):
    """The server. Register files in :attr:`files`; read :attr:`sent` after a request's handler has ended."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, str | None]] = {}
        self.sent: Counter[str] = Counter()
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> SourceServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up while the connection waits for its next request is no error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def wait_finished(self, path: str, timeout: float = 10.0) -> None:
        """Waits until the handler of ``path`` has stopped sending (done, or its client went away)."""
        ends_at = time.monotonic() + timeout
        while path not in self.finished:
            if time.monotonic() > ends_at:
                raise AssertionError(f"the source server is still sending {path}")
            time.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SourceServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        segments = parts.path.strip("/").split("/")
        try:
            if segments[0] == "files":
                self._file(parts.path)
            elif segments[0] == "status":
                self._answer(int(segments[1]), b"nope", "text/plain")
            elif segments[0] == "redirect":
                self._redirect(int(segments[1]), "/".join(segments[2:]))
            elif segments[0] == "drip":
                self._drip(parts.path, int(query["bytes"]), int(query["interval_ms"]))
            elif segments[0] == "huge":
                self._huge(parts.path, int(query["bytes"]), declared=query.get("declared") == "1")
            elif segments[0] == "silent":
                time.sleep(float(query["seconds"]))
            else:
                self._answer(404, b"no such route", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with self.server.lock:
                self.server.finished.add(parts.path)

    def _file(self, path: str) -> None:
        if path not in self.server.files:
            self._answer(404, b"expired", "text/plain")
            return
        body, content_type = self.server.files[path]
        self._answer(200, body, content_type)

    def _answer(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._send(urlsplit(self.path).path, body)

    def _redirect(self, remaining: int, target: str) -> None:
        location = f"/{target}" if remaining <= 1 else f"/redirect/{remaining - 1}/{target}"
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, path: str, size: int, interval_ms: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for _ in range(size):
            self._send(path, b"x")
            time.sleep(interval_ms / 1000)

    def _huge(self, path: str, size: int, *, declared: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if declared:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"v" * CHUNK
        for _ in range(size // CHUNK):
            if declared:
                self._send(path, chunk)
            else:
                self.wfile.write(f"{len(chunk):x}\r\n".encode())
                self._send(path, chunk)
                self.wfile.write(b"\r\n")
        if not declared:
            self.wfile.write(b"0\r\n\r\n")

    def _send(self, path: str, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        with self.server.lock:
            self.server.sent[path] += len(data)
