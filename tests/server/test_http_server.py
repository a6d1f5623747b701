"""The HTTP server protects itself against slow, oversized and too many clients, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from api.http_server import MAX_HEADER_BYTES, GuardedHttpProtocol, server_options
from tests.server.raw_http import (
    is_closed,
    parse_response,
    read_response,
    read_until_closed,
    request,
    trickle,
)
from tests.support import wait_until

KIB = 1024


def head_of(size: int) -> bytes:
    """A GET whose head (request line, headers and the blank line) is exactly ``size`` bytes."""
    bare = request(headers=[("X-Pad", "")])
    return request(headers=[("X-Pad", "a" * (size - len(bare)))])


# --- Size of the head ---------------------------------------------------------------------------------------


def test_headers_over_16_kib_are_refused_with_431_and_the_connection_closed(serve):
    server = serve()
    with server.connect() as sock:
        sock.sendall(head_of(17 * KIB))
        answer = read_response(sock)
        assert answer.status == 431
        assert "16384 bytes" in answer.json()["message"]
        assert answer.headers["connection"] == "close"
        assert is_closed(sock)


def test_headers_of_15_kib_are_served_and_the_connection_kept(serve):
    server = serve()
    with server.connect() as sock:
        for _ in range(2):
            sock.sendall(head_of(15 * KIB))
            answer = read_response(sock)
            assert answer.status == 200 and answer.json() == {"ok": True}


def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_is_not(serve):
    server = serve()
    with server.connect() as sock:
        sock.sendall(head_of(MAX_HEADER_BYTES))
        assert read_response(sock).status == 200
    with server.connect() as sock:
        sock.sendall(head_of(MAX_HEADER_BYTES + 1))
        assert read_response(sock).status == 431


def test_headers_over_the_limit_are_refused_when_they_come_in_small_pieces(serve):
    server = serve(header_timeout_ms=5000)
    with server.connect() as sock:
        data = head_of(17 * KIB)
        for start in range(0, len(data), 1000):
            try:
                sock.sendall(data[start : start + 1000])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.002)  # each piece a read of its own
        assert parse_response(read_until_closed(sock)).status == 431


class ReadCounting(GuardedHttpProtocol):
    """Counts what the server read from its sockets."""

    received = 0

    def data_received(self, data: bytes) -> None:
        ReadCounting.received += len(data)
        super().data_received(data)


def test_a_64_mib_header_line_is_refused_after_a_bounded_read(serve):
    # Given a client with a small send buffer, so that what the kernels hold for it stays small too
    server = serve(protocol=ReadCounting)
    ReadCounting.received = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KIB)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    # When it sends a header line of 64 MiB
    accepted = sock.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ")
    chunk = b"a" * (64 * KIB)
    refused = False
    try:
        while accepted < 64 * 1024 * KIB:
            accepted += sock.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        refused = True
    # Then the server refused it, having read only about 16 KiB (a read of the kernel's is at most 256 KiB)
    assert refused, f"the server accepted {accepted} bytes of one header line"
    print(f"client socket accepted {accepted} bytes; the server read {ReadCounting.received}")
    assert ReadCounting.received <= MAX_HEADER_BYTES + 256 * KIB
    assert accepted < 2 * 1024 * KIB
    sock.close()


# --- Deadlines ----------------------------------------------------------------------------------------------


def test_headers_trickled_past_the_header_timeout_are_cut_off_with_408(serve):
    server = serve(header_timeout_ms=500)
    with server.connect() as sock:
        pieces = [b"GET / HTTP/1.1\r\n"] + [b"X-Slow: yes\r\n"] * 100
        elapsed, answered = trickle(sock, pieces, interval=0.05)
    assert 0.45 <= elapsed < 1.5
    answer = parse_response(answered)
    assert answer.status == 408 and "headers" in answer.json()["message"]


def test_a_connection_that_sends_nothing_is_cut_off_after_the_header_timeout(serve):
    server = serve(header_timeout_ms=500)
    with server.connect() as sock:
        start = time.monotonic()
        answered = read_until_closed(sock)
        elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 1.5
    assert parse_response(answered).status == 408


def test_a_body_trickled_past_the_body_timeout_is_cut_off_with_408(serve):
    server = serve(header_timeout_ms=5000, body_timeout_ms=500)
    with server.connect() as sock:
        head = request("POST", "/echo", headers=[("Content-Length", "1000")])
        elapsed, answered = trickle(sock, [head] + [b"x" * 10] * 100, interval=0.05)
    assert 0.45 <= elapsed < 1.5
    answer = parse_response(answered)
    assert answer.status == 408 and "body" in answer.json()["message"]


def test_the_body_timeout_counts_from_the_end_of_the_headers(serve):
    # Given a head that takes most of its time, then a body that takes most of its own
    server = serve(header_timeout_ms=400, body_timeout_ms=600)
    with server.connect() as sock:
        head = request("POST", "/echo", headers=[("Content-Length", "40")])
        sock.sendall(head[:10])
        time.sleep(0.3)
        sock.sendall(head[10:])
        for _ in range(4):
            time.sleep(0.1)
            sock.sendall(b"x" * 10)
        # Then the request is served, though it took longer than either timeout
        answer = read_response(sock)
    assert answer.status == 200 and answer.json() == {"bytes": 40}


def test_an_idle_kept_alive_connection_is_not_cut_off_by_the_header_timeout(serve):
    server = serve(header_timeout_ms=300)
    with server.connect() as sock:
        sock.sendall(request())
        assert read_response(sock).status == 200
        time.sleep(0.8)  # longer than the header timeout, shorter than keep-alive's 5 s
        sock.sendall(request())
        assert read_response(sock).status == 200


# --- Ordinary clients ---------------------------------------------------------------------------------------


def test_a_kept_alive_client_is_served_across_many_requests(serve):
    server = serve(header_timeout_ms=500, body_timeout_ms=500)
    with server.connect() as sock:
        for number in range(300):
            body = b"x" * number
            sock.sendall(request("POST", "/echo", body=body) if number % 2 else request())
            answer = read_response(sock)
            assert answer.status == 200
            assert answer.json() == ({"bytes": number} if number % 2 else {"ok": True})
        time.sleep(0.7)  # past both deadlines: none is left armed between requests
        sock.sendall(request())
        assert read_response(sock).status == 200


def test_pipelined_requests_are_all_answered(serve):
    server = serve()
    with server.connect() as sock:
        sock.sendall(request() + request("POST", "/echo", body=b"abc") + request())
        answers = [read_response(sock) for _ in range(3)]
    assert [answer.status for answer in answers] == [200, 200, 200]
    assert answers[1].json() == {"bytes": 3}


def test_a_large_body_in_the_same_read_as_its_head_is_not_taken_for_headers(serve):
    server = serve()
    with server.connect() as sock:
        sock.sendall(request("POST", "/echo", body=b"x" * (300 * KIB)))
        answer = read_response(sock)
    assert answer.status == 200 and answer.json() == {"bytes": 300 * KIB}


# --- Concurrency --------------------------------------------------------------------------------------------


def test_connections_beyond_the_bound_get_503_at_once_and_are_not_kept(serve):
    # Given as many idle connections as the bound
    server = serve(max_concurrency=8, header_timeout_ms=5000)
    held = [server.connect() for _ in range(8)]
    wait_until(lambda: server.connections == 8, message="the server did not take 8 connections")
    try:
        # When 40 more connect, without sending anything
        for _ in range(40):
            with server.connect() as extra:
                # Then each is answered 503 and closed at once, and the server holds no more connections
                answer = parse_response(read_until_closed(extra, timeout=2))
                assert answer.status == 503 and "connections" in answer.json()["message"]
        assert server.connections == 8
        # And those within the bound are still served
        held[0].sendall(request())
        assert read_response(held[0]).status == 200
    finally:
        for sock in held:
            sock.close()
    # And once they are gone, new clients are served again
    wait_until(lambda: server.connections == 0, message="the server kept closed connections")
    with server.connect() as sock:
        sock.sendall(request())
        assert read_response(sock).status == 200


def test_300_slow_clients_hold_no_more_than_the_bound_and_are_all_cut_off(serve):
    server = serve(max_concurrency=32, header_timeout_ms=1000)
    clients = [server.connect(timeout=5) for _ in range(300)]
    try:
        wait_until(lambda: server.connections <= 32, message="the server holds more than its bound")
        for sock in clients:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * KIB)
            except (BrokenPipeError, ConnectionResetError):
                pass
        assert server.connections <= 32
        # Then every one of them is cut off: at once beyond the bound, after the header timeout within it
        statuses = [parse_response(data).status for data in map(read_until_closed, clients) if data]
        print(f"300 slow clients: {statuses.count(503)} answered 503, {statuses.count(408)} 408")
        assert statuses.count(503) >= 300 - 32 - 5  # a 503 may be lost to a reset, when data crossed it
        assert statuses.count(408) == 32
    finally:
        for sock in clients:
            sock.close()
    wait_until(lambda: server.connections == 0, message="the server kept closed connections")


def test_server_options_keep_todays_logging_and_shutdown():
    options = server_options()
    assert options["http"] is GuardedHttpProtocol
    assert options["log_config"] is None and options["access_log"] is False
    assert options["timeout_graceful_shutdown"] == 10


def endless_app() -> Starlette:
    """``GET /events.stream`` writes a line every 50 ms, for ever."""

    async def lines():  # type: ignore[no-untyped-def]
        while True:
            yield b": still here\n\n"
            await asyncio.sleep(0.05)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(lines(), media_type="text/event-stream")

    return Starlette(routes=[Route("/events.stream", stream)])


def test_a_stopping_server_cuts_an_event_stream_at_once(serve):
    # Given a client reading an event stream, which never ends by itself
    server = serve(endless_app())
    client = server.connect()
    client.sendall(request(path="/events.stream"))
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    # When the server stops
    started = time.monotonic()
    server.stop()
    # Then it does not wait its graceful timeout (2 s here) for the stream, and the client sees the end
    assert time.monotonic() - started < 1.5
    assert read_until_closed(client, timeout=2) is not None
