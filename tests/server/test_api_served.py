"""The API itself, served as the console script serves it: the protections hold in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.app import create_app
from tests.server.raw_http import GuardedServer, is_closed, parse_response, read_response, request, trickle
from tests.support import sign, webhook_body


@pytest.fixture
def server(settings, db, broker) -> Iterator[GuardedServer]:
    """The API with the product's limits, but a short body timeout."""
    served = GuardedServer(create_app(settings), body_timeout_ms=500).start()
    yield served
    served.stop()


def test_the_webhook_is_served_and_oversized_headers_are_refused_before_it(server):
    body = webhook_body()
    headers = list(sign(body).items())
    with server.connect() as sock:
        sock.sendall(request("POST", "/facebook", headers=headers, body=body))
        assert read_response(sock).status == 200
        sock.sendall(request("POST", "/facebook", headers=[*headers, ("X-Pad", "a" * 17 * 1024)], body=body))
        answer = read_response(sock)
        assert answer.status == 431 and "message" in answer.json()
        assert is_closed(sock)


def test_a_webhook_body_trickled_past_the_body_timeout_is_cut_off(server):
    body = webhook_body()
    head = request("POST", "/facebook", headers=[*sign(body).items(), ("Content-Length", str(len(body)))])
    with server.connect() as sock:
        elapsed, answered = trickle(sock, [head] + [body[i : i + 1] for i in range(len(body))], interval=0.1)
    assert 0.45 <= elapsed < 1.5
    assert parse_response(answered).status == 408
