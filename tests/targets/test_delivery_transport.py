"""The delivery client against real servers on 127.0.0.1: checked addresses, no redirects, a total deadline."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from airy_actors.integrations.targets import check_url
from airy_actors.integrations.transport import RESPONSE_READ_LIMIT, UnsafeTarget, guarded_client
from tests.targets.servers import ScriptedServer, answer, drip, read_request

DEADLINE_MS = 2_500
MARGIN_S = 0.5


def resolver_of(table: dict[str, list[str]], calls: list[str] | None = None) -> Callable[[str, int], list[str]]:
    """A resolver that knows only ``table``: names the system resolver has never heard of."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def post(client: httpx.Client, url: str) -> tuple[int, bytes]:
    """POSTs the way a delivery does: streamed, reading the body as it comes."""
    with client.stream("POST", url, content=b'{"type":"message.created"}') as response:
        return response.status_code, b"".join(response.iter_raw())


# --- which addresses ---------------------------------------------------------------------------------


def test_a_receiver_on_this_host_answers_when_private_targets_are_allowed(serve):
    server = serve(answer(body=b"thanks"))
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS) as client:
        started = time.monotonic()
        assert post(client, f"http://127.0.0.1:{server.port}/hook") == (200, b"thanks")
    assert time.monotonic() - started < 1


def test_a_name_rebound_to_loopback_after_subscribing_is_refused_at_delivery(serve):
    server = serve(answer())
    url = f"http://rebind.test:{server.port}/hook"
    # Given a subscription to a name, accepted because it is not resolved at subscription
    assert check_url(url, allow_private=False) == url
    # When the name resolves to the loopback address at delivery time
    resolve = resolver_of({"rebind.test": ["127.0.0.1"]})
    with guarded_client(allow_private=False, deadline_ms=DEADLINE_MS, resolver=resolve) as client:
        with pytest.raises(UnsafeTarget) as refused:
            post(client, url)
    # Then the delivery is refused before connecting, saying why
    message = str(refused.value)
    assert "rebind.test" in message and "127.0.0.1" in message and "loopback" in message
    assert refused.value.address == ipaddress.ip_address("127.0.0.1")
    assert isinstance(refused.value, httpx.ConnectError)  # what a caller unaware of it already handles
    assert server.connections == 0


@pytest.mark.parametrize(
    "addresses",
    [
        ["93.184.216.34", "127.0.0.1"],
        ["2606:2800:220:1:248:1893:25c8:1946", "::ffff:127.0.0.1"],
        ["169.254.169.254"],
        ["10.1.2.3", "93.184.216.34"],
        ["fd00:ec2::254"],
    ],
)
def test_every_resolved_address_is_checked(serve, addresses):
    server = serve(answer())
    resolve = resolver_of({"mixed.test": addresses})
    with guarded_client(allow_private=False, deadline_ms=DEADLINE_MS, resolver=resolve) as client:
        with pytest.raises(UnsafeTarget):
            post(client, f"http://mixed.test:{server.port}/hook")
    assert server.connections == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]", "[::1]", "localhost"]
)
def test_a_loopback_address_in_any_spelling_is_refused_at_delivery(serve, host):
    server = serve(answer())
    with guarded_client(allow_private=False, deadline_ms=DEADLINE_MS) as client:
        with pytest.raises(UnsafeTarget, match="loopback"):
            post(client, f"http://{host}:{server.port}/hook")
    assert server.connections == 0


def test_the_checked_address_is_connected_to_without_resolving_again(serve):
    server = serve(answer())
    calls: list[str] = []
    resolve = resolver_of({"receiver.test": ["127.0.0.1"]}, calls)
    # The system resolver does not know receiver.test: only the checked address can be reached.
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS, resolver=resolve) as client:
        assert post(client, f"http://receiver.test:{server.port}/hook") == (200, b"ok")
        assert post(client, f"http://receiver.test:{server.port}/hook") == (200, b"ok")
    assert calls == ["receiver.test"]  # once, for the one connection both requests used
    assert server.connections == 1


def test_a_name_that_does_not_resolve_is_a_connection_error(serve):
    with guarded_client(allow_private=False, deadline_ms=DEADLINE_MS, resolver=resolver_of({})) as client:
        with pytest.raises(httpx.ConnectError, match="nowhere.test cannot be resolved") as failed:
            post(client, "http://nowhere.test/hook")
    assert not isinstance(failed.value, UnsafeTarget)


def test_tls_verifies_the_host_name_of_the_url_while_connecting_to_the_checked_address(serve, certificate):
    server = serve(answer(), tls=certificate.server_context())
    resolve = resolver_of({"receiver.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    verify = certificate.client_context()
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS, resolver=resolve, verify=verify) as client:
        assert post(client, f"https://receiver.test:{server.port}/hook") == (200, b"ok")
        assert server.sni == ["receiver.test"]
        # The same address under a name the certificate is not for
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            post(client, f"https://other.test:{server.port}/hook")


# --- what is read ------------------------------------------------------------------------------------


def test_a_redirect_is_not_followed_and_is_the_answer(serve):
    target = serve(answer())
    redirecting = serve(answer(302, b"", {"Location": f"http://127.0.0.1:{target.port}/elsewhere"}))
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS) as client:
        assert post(client, f"http://127.0.0.1:{redirecting.port}/hook") == (302, b"")
    assert target.connections == 0


def test_at_most_64_kib_of_a_response_body_are_read(serve):
    server = serve(answer(body=b"x" * (1024 * 1024)))
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS) as client:
        status, body = post(client, f"http://127.0.0.1:{server.port}/hook")
        assert status == 200 and len(body) == RESPONSE_READ_LIMIT
        # The rest was never read: that connection is closed rather than reused
        post(client, f"http://127.0.0.1:{server.port}/hook")
    assert server.connections == 2


# --- how long ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "dripped"),
    [
        pytest.param(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", id="headers"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"x" * 100, id="body"),
    ],
)
def test_a_receiver_dripping_a_byte_a_second_is_cut_at_the_deadline(serve, prefix, dripped):
    server = serve(drip(prefix, every_s=1.0, total=dripped))
    with guarded_client(allow_private=True, deadline_ms=DEADLINE_MS) as client:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            post(client, f"http://127.0.0.1:{server.port}/hook")
        elapsed = time.monotonic() - started
    assert DEADLINE_MS / 1000 - 0.05 <= elapsed <= DEADLINE_MS / 1000 + MARGIN_S


def test_a_receiver_that_never_answers_is_cut_at_the_deadline(serve):
    server = serve(drip(b"", every_s=60, total=b"H"))
    with guarded_client(allow_private=True, deadline_ms=1_000) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            post(client, f"http://127.0.0.1:{server.port}/hook")
    assert time.monotonic() - started <= 1 + MARGIN_S


def test_a_slow_name_resolution_counts_against_the_deadline():
    def stuck(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["93.184.216.34"]

    with guarded_client(allow_private=False, deadline_ms=1_000, resolver=stuck) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout, match="resolving slow.test"):
            post(client, "http://slow.test/hook")
    assert time.monotonic() - started <= 1 + MARGIN_S


def test_each_request_has_a_deadline_of_its_own(serve):
    def answer_after_600_ms(connection: socket.socket, stopping: threading.Event) -> None:
        while read_request(connection):
            stopping.wait(0.6)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server: ScriptedServer = serve(answer_after_600_ms)
    with guarded_client(allow_private=True, deadline_ms=1_000) as client:
        # Three answers in 1.8 s over one connection, each within its own second
        for _ in range(3):
            assert post(client, f"http://127.0.0.1:{server.port}/hook") == (200, b"ok")
    assert server.connections == 1
