"""A fake Facebook Graph API server for the test suite.

``FakeGraph`` is a real HTTP server on 127.0.0.1 (a Starlette app served by uvicorn in a daemon
thread, on a port chosen by the OS) that speaks the formats of the Graph API endpoints the Messenger
connector uses: ``/me``, page and profile nodes, ``/me/accounts`` with cursor paging,
``/{page_id}/subscribed_apps`` and the Send API. Errors use Facebook's envelope
``{"error": {"message", "type", "code", "error_subcode"?, "fbtrace_id"}}``.

Typical use::

    with FakeGraph() as fake:
        fake.add_page("1001", "Acme", token="PAGE-TOKEN")
        fake.add_contact("42", "Grace", "Hopper", "https://example.com/grace.jpg")
        fake.fail("POST", "/me/messages", error=USER_UNAVAILABLE)
        ...  # point FACEBOOK_GRAPH_URL at fake.url and exercise the product
        assert fake.sent_messages == []

All public methods are thread safe: tests may call them while the server is answering requests.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEFAULT_VERSION = "v25.0"
DEFAULT_APP_ID = "1517776481860111"
DEFAULT_APP_NAME = "Airy"
DEFAULT_ACCOUNTS_LIMIT = 25
MAX_TEXT_LENGTH = 2000

_GRAPH_DOCS = "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
_VERSION_RE = re.compile(r"^v\d+\.\d+$")

# --- Ready-made errors, as Facebook words them. Pass them to ``FakeGraph.fail(error=...)``. ---

INVALID_TOKEN: dict[str, Any] = {
    "message": "Error validating access token: The session has been invalidated because the user changed "
    "their password or Facebook has changed the session for security reasons.",
    "type": "OAuthException",
    "code": 190,
    "error_subcode": 460,
    "fbtrace_id": "AQh5N1kQ0vWq9Yx2m3TfZ1c",
}
TOKEN_EXPIRED: dict[str, Any] = {
    "message": "Error validating access token: Session has expired on Tuesday, 01-Jul-25 10:00:00 PDT. "
    "The current time is Wednesday, 02-Jul-25 09:12:41 PDT.",
    "type": "OAuthException",
    "code": 190,
    "error_subcode": 463,
    "fbtrace_id": "A7pRkq2Xw0bN4sL9dE1uYhT",
}
MALFORMED_TOKEN: dict[str, Any] = {
    "message": "Invalid OAuth access token - Cannot parse access token",
    "type": "OAuthException",
    "code": 190,
    "fbtrace_id": "AZx0cV3bN8mQ2wE5rT7yU1i",
}
USER_UNAVAILABLE: dict[str, Any] = {
    "message": "(#551) This person isn't available right now.",
    "type": "OAuthException",
    "code": 551,
    "error_subcode": 1545041,
    "fbtrace_id": "AbG4hJ6kL8zX0cV2bN4mQ6w",
}
OUTSIDE_WINDOW: dict[str, Any] = {
    "message": "(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
    "https://developers.facebook.com/docs/messenger-platform/policy-overview",
    "type": "OAuthException",
    "code": 10,
    "error_subcode": 2018278,
    "fbtrace_id": "A1sD3fG5hJ7kL9zX1cV3bN5",
}
NO_MATCHING_USER: dict[str, Any] = {
    "message": "(#100) No matching user found",
    "type": "OAuthException",
    "code": 100,
    "error_subcode": 2018001,
    "fbtrace_id": "AmQ8wE0rT2yU4iO6pA8sD0f",
}
RATE_LIMITED: dict[str, Any] = {
    "message": "(#613) Calls to this api have exceeded the rate limit.",
    "type": "OAuthException",
    "code": 613,
    "fbtrace_id": "AgH2jK4lZ6xC8vB0nM2qW4e",
}
APP_RATE_LIMITED: dict[str, Any] = {
    "message": "(#4) Application request limit reached",
    "type": "OAuthException",
    "is_transient": True,
    "code": 4,
    "fbtrace_id": "ArT6yU8iO0pA2sD4fG6hJ8k",
}
PAGE_RATE_LIMITED: dict[str, Any] = {
    "message": "(#32) Page request limit reached",
    "type": "OAuthException",
    "code": 32,
    "fbtrace_id": "AlZ0xC2vB4nM6qW8eR0tY2u",
}
INVALID_PARAMETER: dict[str, Any] = {
    "message": "(#100) Invalid parameter",
    "type": "OAuthException",
    "code": 100,
    "fbtrace_id": "AiO4pA6sD8fG0hJ2kL4zX6c",
}
TRANSIENT: dict[str, Any] = {
    "message": "An unexpected error has occurred. Please retry your request later.",
    "type": "OAuthException",
    "is_transient": True,
    "code": 2,
    "fbtrace_id": "AvB8nM0qW2eR4tY6uI8oP0a",
}
PERMISSION_DENIED: dict[str, Any] = {
    "message": "(#200) Permissions error",
    "type": "OAuthException",
    "code": 200,
    "fbtrace_id": "AsD2fG4hJ6kL8zX0cV2bN4m",
}
PAGE_TOKEN_REQUIRED: dict[str, Any] = {
    "message": "(#210) A page access token is required to request this resource.",
    "type": "OAuthException",
    "code": 210,
    "fbtrace_id": "AqW6eR8tY0uI2oP4aS6dF8g",
}

WEBHOOK_FIELDS: frozenset[str] = frozenset(
    {
        "messages",
        "message_echoes",
        "message_deliveries",
        "message_reads",
        "message_reactions",
        "message_edits",
        "messaging_postbacks",
        "messaging_optins",
        "messaging_optouts",
        "messaging_referrals",
        "messaging_handovers",
        "messaging_policy_enforcement",
        "messaging_account_linking",
        "messaging_game_plays",
        "messaging_customer_information",
        "messaging_feedback",
        "standby",
        "inbox_labels",
        "feed",
        "mention",
        "conversations",
        "leadgen",
        "ratings",
        "name",
        "picture",
        "category",
        "description",
        "email",
        "website",
        "live_videos",
        "videos",
    }
)
"""The page webhook fields ``POST /{page_id}/subscribed_apps`` accepts; anything else is error 100."""

MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
SENDER_ACTIONS = ("mark_seen", "typing_on", "typing_off")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received, recorded before any failure injection or validation."""

    method: str
    path: str
    """Path relative to the version, e.g. ``/me/messages``."""
    query: dict[str, str]
    json: Any
    """The parsed JSON body, or None when the body was empty or not JSON."""
    token: str | None
    """The access token, from the query string, the ``Authorization`` header or the body."""
    form: dict[str, str] = field(default_factory=dict)
    """The url-encoded form body, if any."""
    version: str = DEFAULT_VERSION


@dataclass(frozen=True)
class EchoDelivery:
    """One ``message_echoes`` webhook the fake posted (see ``FakeGraph.deliver_echoes_to``)."""

    url: str
    body: bytes
    """The exact signed bytes."""
    payload: dict[str, Any]
    status: int | None
    """The receiver's HTTP status, or None when the POST failed."""


class GraphError(Exception):
    """An error answer: raised by the request handlers, turned into Facebook's error envelope."""

    def __init__(self, error: dict[str, Any], status: int = 400) -> None:
        super().__init__(error.get("message", ""))
        self.error = error
        self.status = status


@dataclass
class _Page:
    id: str
    name: str
    token: str
    picture_url: str


@dataclass
class _User:
    id: str
    name: str
    token: str
    page_ids: list[str]


@dataclass
class _Contact:
    psid: str
    first_name: str
    last_name: str
    profile_pic: str


@dataclass
class _Failure:
    method: str
    path: str
    error: dict[str, Any]
    status: int
    remaining: int
    delay_ms: int


@dataclass
class _Call:
    """A request as the handlers see it."""

    method: str
    path: str
    version: str
    query: dict[str, str]
    params: dict[str, Any]
    """Query, form and JSON body merged (body wins), without ``access_token``."""
    token: str | None


def _trace_id() -> str:
    return secrets.token_urlsafe(17)


def _fresh(error: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ready-made error with a new ``fbtrace_id``, as each Facebook answer has."""
    return {**copy.deepcopy(error), "fbtrace_id": _trace_id()}


def _oauth_error(message: str, code: int = 100, subcode: int | None = None) -> GraphError:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = _trace_id()
    return GraphError(error)


def _unsupported(method: str, object_id: str) -> GraphError:
    """Facebook's answer for an unknown object, or one the token may not see."""
    return GraphError(
        {
            "message": f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
            f"cannot be loaded due to missing permissions, or does not support this operation. {_GRAPH_DOCS}",
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
            "fbtrace_id": _trace_id(),
        }
    )


def _nonexisting_field(name: str, node_type: str) -> GraphError:
    return _oauth_error(f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")


def _unknown_path(components: list[str]) -> GraphError:
    return _oauth_error("Unknown path components: /" + "/".join(components))


def _not_one_of(param: str, allowed: Any, got: Any) -> GraphError:
    return _oauth_error(f'(#100) Param {param} must be one of {{{", ".join(allowed)}}} - got "{got}"')


def _requested_fields(raw: Any, default: tuple[str, ...]) -> list[str]:
    """The top-level names of a ``fields`` parameter, e.g. ``name,picture.type(large){url}``."""
    if not isinstance(raw, str) or not raw.strip():
        return list(default)
    names: list[str] = []
    depth = 0
    current: list[str] = []
    for char in raw:
        if char in "{(":
            depth += 1
        elif char in "})":
            depth -= 1
        if char == "," and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    return [re.split(r"[.{]", name.strip(), maxsplit=1)[0] for name in names if name.strip()]


def _render(node_type: str, available: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Select ``fields`` of a node; like Facebook, ``id`` is always included."""
    out: dict[str, Any] = {}
    for name in fields:
        if name not in available:
            raise _nonexisting_field(name, node_type)
        out[name] = available[name]
    out.setdefault("id", available["id"])
    return out


def _picture(url: str) -> dict[str, Any]:
    return {"data": {"height": 50, "is_silhouette": False, "url": url, "width": 50}}


def _cursor(page_id: str) -> str:
    return base64.urlsafe_b64encode(page_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _parse_body(content_type: str, raw: bytes) -> tuple[Any, dict[str, str], GraphError | None]:
    """Return the JSON body, the form body and the error to answer with if the body is malformed."""
    if not raw:
        return None, {}, None
    if "application/x-www-form-urlencoded" in content_type:
        return None, dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)), None
    try:
        return json.loads(raw), {}, None
    except (ValueError, UnicodeDecodeError):
        return None, {}, _oauth_error("(#100) The request body could not be parsed as JSON")


def _extract_token(request: Request, query: dict[str, str], form: dict[str, str], body: Any) -> str | None:
    if query.get("access_token"):
        return query["access_token"]
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and credentials.strip():
        return credentials.strip()
    if form.get("access_token"):
        return form["access_token"]
    if isinstance(body, dict) and isinstance(body.get("access_token"), str):
        return body["access_token"]
    return None


def _json_param(params: dict[str, Any], name: str) -> Any:
    """A Send API parameter, which form or query callers pass as a JSON string."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _oauth_error(f"(#100) param {name} must be a JSON object.") from exc
    return value


def _sign(secret: str, body: bytes, digest: str) -> str:
    return hmac.new(secret.encode(), body, digest).hexdigest()


def _echo_message(message: dict[str, Any], app_id: str, mid: str) -> dict[str, Any]:
    """The ``message`` of an echo webhook: Send API ``attachment`` becomes a list ``attachments``."""
    echo: dict[str, Any] = {"is_echo": True, "app_id": int(app_id), "mid": mid}
    for key, value in message.items():
        if key == "attachment":
            echo["attachments"] = [value]
        else:
            echo[key] = value
    return echo


class FakeGraph:
    """A fake Facebook Graph API, served over real HTTP on 127.0.0.1.

    State (pages, users, contacts, injected failures, recordings) lives in memory and is guarded
    by a lock; ``requests``, ``sent_messages``, ``sender_actions``, ``subscriptions`` and
    ``echoes`` return snapshots.
    """

    def __init__(
        self, app_id: str = DEFAULT_APP_ID, app_name: str = DEFAULT_APP_NAME, version: str = DEFAULT_VERSION
    ) -> None:
        self.app_id = app_id
        self.app_name = app_name
        self.version = version
        self.latency_ms = 0
        """Milliseconds added to every answer; settable at any time."""
        self.strict_recipients = False
        """When True, sending to a PSID not added with ``add_contact`` fails with ``NO_MATCHING_USER``."""
        self._lock = threading.Lock()
        self._pages: dict[str, _Page] = {}
        self._page_tokens: dict[str, str] = {}
        self._users: dict[str, _User] = {}
        self._contacts: dict[str, _Contact] = {}
        self._invalid_tokens: set[str] = set()
        self._failures: list[_Failure] = []
        self._requests: list[RecordedRequest] = []
        self._sent: list[dict[str, Any]] = []
        self._sender_actions: list[dict[str, Any]] = []
        self._subscriptions: dict[str, list[str]] = {}
        self._echo_target: tuple[str, str] | None = None
        self._echoes: list[EchoDelivery] = []
        self._echo_futures: list[Future[None]] = []
        self._echo_executor: ThreadPoolExecutor | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE", "PUT"])])

    # --- lifecycle ---

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without the version."""
        if self._port is None:
            raise RuntimeError("FakeGraph is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The base URL including the version, e.g. ``http://127.0.0.1:41234/v25.0``."""
        return f"{self.origin}/{self.version}"

    def start(self, timeout: float = 10.0) -> FakeGraph:
        """Serve in a daemon thread; return once the server accepts connections."""
        if self._thread is not None:
            return self
        # An explicit IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections; without it
        # every answer suffers the 40 ms Nagle / delayed-ACK stall.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-graph", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("FakeGraph did not start")
            time.sleep(0.01)
        self._server, self._thread, self._socket = server, thread, sock
        self._port = sock.getsockname()[1]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; gives up waiting after ``timeout`` seconds (the thread is a daemon)."""
        server, thread, sock = self._server, self._thread, self._socket
        if server is None or thread is None or sock is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        sock.close()
        with self._lock:
            executor, self._echo_executor = self._echo_executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._server = self._thread = self._socket = None
        self._port = None

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- scenario set-up ---

    def reset(self) -> None:
        """Forget pages, users, contacts, invalidated tokens, failures, subscriptions, recordings and
        the echo target, and set ``latency_ms`` to 0 and ``strict_recipients`` to False."""
        with self._lock:
            self._pages.clear()
            self._page_tokens.clear()
            self._users.clear()
            self._contacts.clear()
            self._invalid_tokens.clear()
            self._failures.clear()
            self._requests.clear()
            self._sent.clear()
            self._sender_actions.clear()
            self._subscriptions.clear()
            self._echo_target = None
            self._echoes.clear()
            self.latency_ms = 0
            self.strict_recipients = False

    def add_page(self, page_id: str, name: str, token: str, picture_url: str | None = None) -> None:
        """Add (or replace) a page and its page access token; the token becomes valid again."""
        with self._lock:
            previous = self._pages.get(page_id)
            if previous is not None:
                self._page_tokens.pop(previous.token, None)
            url = picture_url or f"https://scontent.xx.fbcdn.net/v/t39.30808-1/{page_id}_n.jpg"
            self._pages[page_id] = _Page(page_id, name, token, url)
            self._page_tokens[token] = page_id
            self._invalid_tokens.discard(token)

    def add_user(
        self, user_token: str, page_ids: list[str], *, user_id: str | None = None, name: str = "Test User"
    ) -> None:
        """Add a user token managing ``page_ids`` (listed by ``/me/accounts`` in this order).

        Pages not added (yet) are skipped when answering. ``user_id`` defaults to a number derived
        from the token.
        """
        digest = int(hashlib.sha256(user_token.encode()).hexdigest(), 16)
        uid = user_id or str(10**14 + digest % (9 * 10**14))
        with self._lock:
            self._users[user_token] = _User(uid, name, user_token, list(dict.fromkeys(page_ids)))
            self._invalid_tokens.discard(user_token)

    def add_contact(self, psid: str, first_name: str, last_name: str, profile_pic: str) -> None:
        """Add a person, known by their page-scoped id, visible to every page token."""
        with self._lock:
            self._contacts[psid] = _Contact(psid, first_name, last_name, profile_pic)

    def invalidate_token(self, token: str) -> None:
        """Make every later call with ``token`` fail with error 190, subcode 460."""
        with self._lock:
            self._invalid_tokens.add(token)

    def fail(
        self,
        method: str,
        path: str,
        *,
        error: dict[str, Any] | None = None,
        status: int = 400,
        times: int = 1,
        delay_ms: int = 0,
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and ``path`` with ``{"error": error}``.

        ``path`` is relative to the version and may be a glob (``/*/subscribed_apps``); ``method``
        may be ``*``. ``error`` defaults to ``TRANSIENT``. ``times=-1`` means forever. ``delay_ms``
        is slept before answering, to let a client time out. Rules apply in the order added.
        """
        if times == 0 or times < -1:
            raise ValueError("times must be positive, or -1 for forever")
        rule = _Failure(
            method=method.upper(),
            path=path if path.startswith("/") else "/" + path,
            error=copy.deepcopy(error if error is not None else TRANSIENT),
            status=status,
            remaining=times,
            delay_ms=delay_ms,
        )
        rule.error.setdefault("fbtrace_id", _trace_id())
        with self._lock:
            self._failures.append(rule)

    def unsubscribe_app(self, page_id: str) -> None:
        """Simulate Facebook dropping our app's webhook subscription for a page."""
        with self._lock:
            self._subscriptions.pop(page_id, None)

    def deliver_echoes_to(self, url: str, app_secret: str) -> None:
        """After each accepted message, POST its ``message_echoes`` webhook to ``url``.

        The body is signed like Facebook's (``X-Hub-Signature-256`` and ``X-Hub-Signature``) and,
        like Facebook's, escapes ``/`` and non-ASCII characters, so receivers must verify the raw
        bytes. Delivery happens in order from a background thread; failures are ignored (see
        ``echoes``).
        """
        with self._lock:
            self._echo_target = (url, app_secret)
            if self._echo_executor is None:
                self._echo_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fake-graph-echo")

    def flush_echoes(self, timeout: float = 10.0) -> None:
        """Wait until the echoes queued so far have been posted (or ``timeout`` passes)."""
        with self._lock:
            pending = list(self._echo_futures)
        wait_futures(pending, timeout=timeout)
        with self._lock:
            self._echo_futures = [future for future in self._echo_futures if not future.done()]

    # --- recordings ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def find_requests(self, method: str = "*", path: str = "*") -> list[RecordedRequest]:
        """The recorded requests whose method and path match the given globs."""
        return [
            request
            for request in self.requests
            if fnmatch.fnmatchcase(request.method, method.upper()) and fnmatch.fnmatchcase(request.path, path)
        ]

    @property
    def sent_messages(self) -> list[dict[str, Any]]:
        """Every accepted Send API message body, plus ``page_id`` and the returned ``message_id``."""
        with self._lock:
            return copy.deepcopy(self._sent)

    @property
    def sender_actions(self) -> list[dict[str, Any]]:
        """Every accepted Send API ``sender_action`` body (typing indicators, mark seen), plus ``page_id``."""
        with self._lock:
            return copy.deepcopy(self._sender_actions)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """page_id -> the ``subscribed_fields`` of our app."""
        with self._lock:
            return copy.deepcopy(self._subscriptions)

    @property
    def echoes(self) -> list[EchoDelivery]:
        """Every echo webhook posted so far."""
        with self._lock:
            return list(self._echoes)

    # --- HTTP ---

    async def _handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        segments = [segment for segment in request.url.path.split("/") if segment]
        version = self.version
        if segments and _VERSION_RE.match(segments[0]):
            version = segments.pop(0)
        path = "/" + "/".join(segments)
        query = dict(request.query_params)
        body, form, body_error = _parse_body(request.headers.get("content-type", ""), raw)
        token = _extract_token(request, query, form, body)
        method = request.method
        recorded = RecordedRequest(method, path, query, copy.deepcopy(body), token, form, version)
        with self._lock:
            self._requests.append(recorded)
            failure = self._take_failure(method, path)
        delay_ms = self.latency_ms + (failure.delay_ms if failure else 0)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if failure is not None:
            return self._error_response(failure.error, failure.status, version)
        params: dict[str, Any] = {**query, **form, **(body if isinstance(body, dict) else {})}
        params.pop("access_token", None)
        try:
            if body_error is not None:
                raise body_error
            with self._lock:
                payload = self._dispatch(_Call(method, path, version, query, params, token))
        except GraphError as exc:
            return self._error_response(exc.error, exc.status, version)
        return JSONResponse(payload, headers=self._headers(version))

    @staticmethod
    def _headers(version: str) -> dict[str, str]:
        return {"facebook-api-version": version, "x-fb-trace-id": _trace_id()}

    def _error_response(self, error: dict[str, Any], status: int, version: str) -> JSONResponse:
        headers = self._headers(version)
        if error.get("code") == 190:
            headers["www-authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error["message"]}"'
        return JSONResponse({"error": error}, status_code=status, headers=headers)

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        """Consume one use of the first matching failure rule. Call with the lock held."""
        for rule in self._failures:
            if fnmatch.fnmatchcase(method, rule.method) and fnmatch.fnmatchcase(path, rule.path):
                if rule.remaining > 0:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._failures.remove(rule)
                return rule
        return None

    # --- Graph API, all called with the lock held ---

    def _authenticate(self, token: str | None) -> _Page | _User:
        if token is not None and token in self._invalid_tokens:
            raise GraphError(_fresh(INVALID_TOKEN))
        if token is not None and token in self._page_tokens:
            return self._pages[self._page_tokens[token]]
        if token is not None and token in self._users:
            return self._users[token]
        raise GraphError(_fresh(MALFORMED_TOKEN))

    def _resolve(self, node_id: str, caller: _Page | _User, method: str) -> _Page | _User | _Contact:
        if node_id == "me":
            return caller
        if isinstance(caller, _User) and node_id == caller.id:
            return caller
        if node_id in self._pages:
            return self._pages[node_id]
        if node_id in self._contacts:
            return self._contacts[node_id]
        raise _unsupported(method, node_id)

    def _dispatch(self, call: _Call) -> dict[str, Any]:
        caller = self._authenticate(call.token)
        segments = [segment for segment in call.path.split("/") if segment]
        if not segments:
            raise _unsupported(call.method, "")
        node_id, edge, rest = segments[0], (segments[1] if len(segments) > 1 else None), segments[2:]
        if rest:
            raise _unknown_path(rest)
        node = self._resolve(node_id, caller, call.method)
        if isinstance(node, _Page):
            node_type = "Page"
            if edge is None and call.method == "GET":
                return self._get_page(call, caller, node)
            if edge == "subscribed_apps" and call.method in ("GET", "POST", "DELETE"):
                return self._subscribed_apps(call, self._require_page_token(call, caller, node))
            if edge == "messages" and call.method == "POST":
                return self._send(call, self._require_page_token(call, caller, node))
        elif isinstance(node, _User):
            node_type = "User"
            if edge is None and call.method == "GET":
                fields = _requested_fields(call.params.get("fields"), ("name", "id"))
                return _render("User", {"id": node.id, "name": node.name}, fields)
            if edge == "accounts" and call.method == "GET":
                return self._accounts(call, node)
        else:
            node_type = "User"
            if edge is None and call.method == "GET":
                return self._get_contact(call, caller, node)
        if edge is None:
            raise _unsupported(call.method, node_id)
        if call.method == "GET":
            raise _nonexisting_field(edge, node_type)
        raise _unknown_path([edge])

    @staticmethod
    def _require_page_token(call: _Call, caller: _Page | _User, page: _Page) -> _Page:
        if caller is page:
            return page
        if isinstance(caller, _User) and page.id in caller.page_ids:
            raise GraphError(_fresh(PAGE_TOKEN_REQUIRED))
        raise _unsupported(call.method, page.id)

    @staticmethod
    def _page_fields(page: _Page) -> dict[str, Any]:
        return {
            "id": page.id,
            "name": page.name,
            "picture": _picture(page.picture_url),
            "category": "Business",
        }

    def _get_page(self, call: _Call, caller: _Page | _User, page: _Page) -> dict[str, Any]:
        if caller is not page and not (isinstance(caller, _User) and page.id in caller.page_ids):
            raise _unsupported(call.method, page.id)
        fields = _requested_fields(call.params.get("fields"), ("name", "id"))
        return _render("Page", self._page_fields(page), fields)

    def _get_contact(self, call: _Call, caller: _Page | _User, contact: _Contact) -> dict[str, Any]:
        if not isinstance(caller, _Page):
            raise _unsupported(call.method, contact.psid)
        available = {
            "id": contact.psid,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "name": f"{contact.first_name} {contact.last_name}",
            "profile_pic": contact.profile_pic,
        }
        fields = _requested_fields(call.params.get("fields"), ("first_name", "last_name", "profile_pic", "id"))
        return _render("User", available, fields)

    def _subscribed_apps(self, call: _Call, page: _Page) -> dict[str, Any]:
        if call.method == "GET":
            fields = self._subscriptions.get(page.id)
            if fields is None:
                return {"data": []}
            return {"data": [{"id": self.app_id, "name": self.app_name, "subscribed_fields": list(fields)}]}
        if call.method == "DELETE":
            self._subscriptions.pop(page.id, None)
            return {"success": True}
        raw = call.params.get("subscribed_fields")
        if isinstance(raw, str) and raw.startswith("["):
            raw = _json_param(call.params, "subscribed_fields")
        if isinstance(raw, str):
            requested = [name.strip() for name in raw.split(",") if name.strip()]
        elif isinstance(raw, list):
            requested = [str(name) for name in raw]
        else:
            requested = []
        if not requested:
            raise _oauth_error("(#100) The parameter subscribed_fields is required.")
        for index, name in enumerate(requested):
            if name not in WEBHOOK_FIELDS:
                raise _not_one_of(f"subscribed_fields[{index}]", sorted(WEBHOOK_FIELDS), name)
        self._subscriptions[page.id] = list(dict.fromkeys(requested))
        return {"success": True}

    def _accounts(self, call: _Call, user: _User) -> dict[str, Any]:
        pages = [self._pages[page_id] for page_id in user.page_ids if page_id in self._pages]
        limit_param = call.params.get("limit", DEFAULT_ACCOUNTS_LIMIT)
        try:
            limit = int(limit_param)
        except (TypeError, ValueError) as exc:
            raise _oauth_error(f'(#100) Param limit must be an integer - got "{limit_param}"') from exc
        limit = max(limit, 1)
        positions = {page.id: index for index, page in enumerate(pages)}

        def position(name: str) -> int:
            page_id = _uncursor(str(call.params[name]))
            if page_id not in positions:
                raise _oauth_error(f"(#100) The {name} cursor is invalid")
            return positions[page_id]

        if call.params.get("after"):
            start = position("after") + 1
            end = start + limit
        elif call.params.get("before"):
            end = position("before")
            start = max(end - limit, 0)
        else:
            start, end = 0, limit
        chunk = pages[start:end]
        if not chunk:
            return {"data": []}
        fields = _requested_fields(
            call.params.get("fields"), ("access_token", "category", "category_list", "name", "id", "tasks")
        )
        data = []
        for page in chunk:
            available = {
                **self._page_fields(page),
                "access_token": page.token,
                "category_list": [{"id": "2500", "name": "Business"}],
                "tasks": ["MANAGE", "MESSAGING"],
            }
            data.append(_render("Page", available, fields))
        before, after = _cursor(chunk[0].id), _cursor(chunk[-1].id)
        paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
        base = {key: value for key, value in call.query.items() if key not in ("after", "before")}
        link = f"{self.origin}/{call.version}/{user.id}/accounts?"
        if start > 0:
            paging["previous"] = link + urlencode({**base, "before": before})
        if start + len(chunk) < len(pages):
            paging["next"] = link + urlencode({**base, "after": after})
        return {"data": data, "paging": paging}

    def _send(self, call: _Call, page: _Page) -> dict[str, Any]:
        recipient = _json_param(call.params, "recipient")
        if not isinstance(recipient, dict) or not recipient:
            raise _oauth_error("(#100) The parameter recipient is required")
        if not recipient.get("id"):
            raise _oauth_error("(#100) param recipient must be non-empty.")
        psid = str(recipient["id"])
        message = _json_param(call.params, "message")
        sender_action = call.params.get("sender_action")
        if message is None and sender_action is None:
            raise _oauth_error("(#100) Must send either message or sender action")
        if self.strict_recipients and psid not in self._contacts:
            raise GraphError(_fresh(NO_MATCHING_USER))
        body = {**copy.deepcopy(call.params), "recipient": recipient}
        body.pop("appsecret_proof", None)
        if sender_action is not None:
            if sender_action not in SENDER_ACTIONS:
                raise _not_one_of("sender_action", SENDER_ACTIONS, sender_action)
            self._sender_actions.append({**body, "page_id": page.id})
            return {"recipient_id": psid}
        self._validate_message(call.params, message)
        message_id = "m_" + secrets.token_urlsafe(64)
        self._sent.append({**body, "message": message, "page_id": page.id, "message_id": message_id})
        self._queue_echo(page.id, psid, message, message_id)
        return {"recipient_id": psid, "message_id": message_id}

    @staticmethod
    def _validate_message(params: dict[str, Any], message: Any) -> None:
        messaging_type = params.get("messaging_type")
        if messaging_type is not None and messaging_type not in MESSAGING_TYPES:
            raise _not_one_of("messaging_type", MESSAGING_TYPES, messaging_type)
        if messaging_type == "MESSAGE_TAG" and not params.get("tag"):
            raise _oauth_error("(#100) The parameter tag is required when messaging_type is MESSAGE_TAG")
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            raise _oauth_error("(#100) Message cannot be empty, must provide valid attachment or text")
        text = message.get("text")
        if isinstance(text, str) and len(text) > MAX_TEXT_LENGTH:
            raise _oauth_error(f"(#100) Length of param message[text] must be less than or equal to {MAX_TEXT_LENGTH}")

    # --- echo webhooks ---

    def _queue_echo(self, page_id: str, psid: str, message: dict[str, Any], message_id: str) -> None:
        """Schedule the echo of an accepted message. Call with the lock held."""
        if self._echo_target is None or self._echo_executor is None:
            return
        now = int(time.time() * 1000)
        payload = {
            "object": "page",
            "entry": [
                {
                    "id": page_id,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": page_id},
                            "recipient": {"id": psid},
                            "timestamp": now,
                            "message": _echo_message(message, self.app_id, message_id),
                        }
                    ],
                }
            ],
        }
        # Facebook escapes "/" (and non-ASCII) in webhook bodies and signs those exact bytes.
        body = json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()
        url, secret = self._echo_target
        self._echo_futures.append(self._echo_executor.submit(self._post_echo, url, secret, body))

    def _post_echo(self, url: str, secret: str, body: bytes) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature": "sha1=" + _sign(secret, body, "sha1"),
            "X-Hub-Signature-256": "sha256=" + _sign(secret, body, "sha256"),
        }
        status: int | None
        try:
            status = httpx.post(url, content=body, headers=headers, timeout=5).status_code
        except httpx.HTTPError:
            status = None
        with self._lock:
            self._echoes.append(EchoDelivery(url, body, json.loads(body), status))
