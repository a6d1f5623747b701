"""The HTTP transport of webhook deliveries: public targets only, and one total deadline per attempt.

:class:`GuardedTransport` is an httpx transport over httpcore's connection pool, with a network backend of its
own (the pool's public ``network_backend`` seam):

- At each new connection, :class:`GuardedBackend` resolves the host itself, refuses to connect
  (:class:`UnsafeTarget`) when *any* address it resolved to is not public (``webhook_targets.address_problem``),
  and connects to an address it checked, by number: the name is not resolved a second time, so DNS re-pointed at
  ``127.0.0.1`` after the subscription is caught at delivery. TLS then runs as usual: SNI and certificate
  verification use the host name of the URL.
- A request has a total deadline. Name resolution, connecting, TLS, sending the request and reading the answer
  and its body all count against it: every network operation is given at most the time left, so a receiver that
  drips one byte at a time is cut at the deadline instead of being granted a fresh read timeout per byte.
- At most ``max_response_bytes`` of a response body are read; a connection left with unread body is closed.

The client of :func:`guarded_client` never follows redirects: a 3xx is the answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote

import httpcore
import httpx

from airy_actors.integrations.targets import IPAddress, address_problem

RESPONSE_READ_LIMIT = 64 * 1024
DELIVERY_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)
USER_AGENT = "airy-actors-webhooks"
_WRITE_CHUNK = 16 * 1024  # each chunk gets the time left, so a receiver that reads slowly cannot stretch a write

Resolver = Callable[[str, int], Sequence[IPAddress | str]]
"""Gives the addresses of a host name (or of an address, written as text), in order of preference."""

# The monotonic time at which the request being sent on this thread must be done; None outside a request.
_deadline: ContextVar[float | None] = ContextVar("airy_delivery_deadline", default=None)


class UnsafeTarget(httpx.ConnectError):
    """A delivery refused before connecting: its host is, or resolved to, an address that is not public.

    A subclass of :class:`httpx.ConnectError`, so that code unaware of it still treats it as a failed connection.
    The message names the host, the address and what is wrong with it.
    """

    def __init__(self, host: str, address: IPAddress, problem: str) -> None:
        target = host if host == str(address) else f"{host}: it resolved to {address}"
        super().__init__(f"refused to connect to {target}, {problem}; webhooks are only sent to public addresses")
        self.host = host
        self.address = address
        self.problem = problem


def resolve(host: str, port: int) -> list[IPAddress]:
    """The system resolver: the addresses of ``host`` from ``getaddrinfo``, in its order of preference.

    Raises:
      OSError: when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    families = (socket.AF_INET, socket.AF_INET6)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos if info[0] in families))


def _time_left(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left before the deadline; raises ``expired`` once it has passed."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the delivery's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_CHUNK):
            self._stream.write(buffer[start : start + _WRITE_CHUNK], _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # The handshake as a whole is bounded by the socket timeout it is given (CPython's ssl module).
        left = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses it resolved and checked itself.

    Parameters:
      allow_private: connect to loopback, private and link-local addresses too (a receiver on the same network).
      resolver: gives the addresses of a host; the system resolver by default. Runs under the deadline.
    """

    def __init__(self, *, allow_private: bool, resolver: Resolver = resolve) -> None:
        self.allow_private = allow_private
        self._resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        name = unquote(host)  # httpx keeps an IPv6 zone percent-encoded (fe80::1%25eth0)
        addresses = self._resolve(name, port, _time_left(timeout, httpcore.ConnectTimeout))
        if not self.allow_private:
            for address in addresses:
                problem = address_problem(address)
                if problem:
                    raise UnsafeTarget(name, address, problem)
        failure: Exception = httpcore.ConnectError(f"{name} resolved to no address")
        for address in addresses:
            try:
                # A numeric host: getaddrinfo parses it, it does not look it up.
                stream = super().connect_tcp(
                    str(address),
                    port,
                    timeout=_time_left(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhook deliveries are not made over Unix sockets")

    def _resolve(self, name: str, port: int, timeout: float | None) -> list[IPAddress]:
        """Resolves ``name`` within ``timeout``: a resolver that hangs costs a daemon thread, not the delivery."""
        found: list[IPAddress] = []
        failed: list[BaseException] = []

        def run() -> None:
            try:
                found.extend(ipaddress.ip_address(address) for address in self._resolver(name, port))
            except BaseException as exc:  # handed to the waiting thread
                failed.append(exc)

        resolver = threading.Thread(target=run, name=f"resolve {name}", daemon=True)
        resolver.start()
        resolver.join(timeout)
        if resolver.is_alive():
            raise httpcore.ConnectTimeout(f"resolving {name} took longer than the delivery's deadline")
        if failed:
            if isinstance(failed[0], OSError | ValueError):
                raise httpcore.ConnectError(f"{name} cannot be resolved ({failed[0]})") from failed[0]
            raise failed[0]
        return list(dict.fromkeys(found))


_HTTPCORE_ERRORS: list[tuple[type[Exception], type[httpx.HTTPError]]] = [  # the most specific first
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
]


@contextlib.contextmanager
def _as_httpx_errors(deadline: float) -> Iterator[None]:
    """Runs a step of a request under its deadline, raising httpx's exceptions for httpcore's."""
    token = _deadline.set(deadline)
    try:
        yield
    except Exception as exc:
        for core, mapped in _HTTPCORE_ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise
    finally:
        _deadline.reset(token)


class _ResponseBody(httpx.SyncByteStream):
    """A response body read under its request's deadline, and only up to ``limit`` bytes."""

    def __init__(self, stream: Iterable[bytes], deadline: float, limit: int) -> None:
        self._stream = stream
        self._deadline = deadline
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._stream)
        left = self._limit
        while left > 0:
            with _as_httpx_errors(self._deadline):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk[:left]
            left -= len(chunk)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            with _as_httpx_errors(self._deadline):
                close()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport for webhook deliveries: checked targets and a total deadline per request.

    Parameters:
      allow_private: deliver to loopback, private and link-local addresses too (``AIRY_WEBHOOKS_ALLOW_PRIVATE``).
      deadline_ms: how long one request may take in all, from resolving the host to the last byte of the body
        that is read (``AIRY_DELIVERY_TIMEOUT_MS``).
      resolver: gives the addresses of a host; the system resolver by default.
      verify: as httpx's ``verify``: True, or an ``ssl.SSLContext`` with the certificates to trust.
      max_response_bytes: how much of a response body is read at most.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        deadline_ms: int,
        resolver: Resolver = resolve,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DELIVERY_LIMITS,
        max_response_bytes: int = RESPONSE_READ_LIMIT,
    ) -> None:
        if deadline_ms <= 0:
            raise ValueError("deadline_ms must be positive")
        self.deadline_ms = deadline_ms
        self.max_response_bytes = max_response_bytes
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        seconds = self.deadline_ms / 1000
        deadline = time.monotonic() + seconds
        # The pool's wait for a free connection counts too; the other timeouts are clamped again as time passes.
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), None) | request.extensions.get("timeout", {})
        extensions = {
            **request.extensions,
            "timeout": {name: seconds if value is None else min(value, seconds) for name, value in timeouts.items()},
        }
        assert isinstance(request.stream, Iterable)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=extensions,
        )
        with _as_httpx_errors(deadline):
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseBody(response.stream, deadline, self.max_response_bytes),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def guarded_client(
    *,
    allow_private: bool,
    deadline_ms: int,
    connect_timeout_ms: int | None = None,
    resolver: Resolver = resolve,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits = DELIVERY_LIMITS,
    max_response_bytes: int = RESPONSE_READ_LIMIT,
) -> httpx.Client:
    """The HTTP client of webhook deliveries, over a :class:`GuardedTransport`.

    It follows no redirects and ignores the environment (no proxy, no ``.netrc``): requests go straight to the
    checked address.

    Parameters:
      connect_timeout_ms: a shorter bound on resolving and connecting, within the deadline.
      (The others as :class:`GuardedTransport`'s.)
    """
    transport = GuardedTransport(
        allow_private=allow_private,
        deadline_ms=deadline_ms,
        resolver=resolver,
        verify=verify,
        limits=limits,
        max_response_bytes=max_response_bytes,
    )
    seconds = deadline_ms / 1000
    connect = seconds if connect_timeout_ms is None else min(seconds, connect_timeout_ms / 1000)
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(seconds, connect=connect),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )
