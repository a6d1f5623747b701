"""``FakeGraph``: the parts of the fake put together behind one real HTTP server.

The server is a Starlette app served by uvicorn in a daemon thread, on a port chosen by the OS. A
request first may be for a served file (``files``); otherwise it is a Graph API call: recorded,
possibly failed on purpose (``fail``), then dispatched by node and edge through ``_routes``, the one
table of every endpoint the fake answers.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .core import DEFAULT_APP_ID, DEFAULT_APP_NAME
from .errors import (
    TRANSIENT,
    GraphError,
    missing_parameter,
    nonexisting_field,
    oauth_error,
    trace_id,
    unknown_path,
    unsupported,
)
from .files import Files
from .instagram import Instagram
from .nodes import (
    NODE_TYPES,
    Caller,
    Contact,
    InstagramAccount,
    InstagramContact,
    Node,
    Page,
    User,
    render,
    requested_fields,
)
from .pages import Pages
from .wire import DEFAULT_VERSION, Call, RecordedRequest, extract_token, json_param, parse_body

_VERSION_RE = re.compile(r"^v\d+\.\d+$")

Handler = Callable[[Call, Caller, Any], dict[str, Any]]


@dataclass
class _Failure:
    method: str
    path: str
    error: dict[str, Any]
    status: int
    remaining: int
    delay_ms: int


class FakeGraph(Pages, Instagram, Files):
    """A fake Facebook Graph API, served over real HTTP on 127.0.0.1.

    State (pages, users, contacts, tokens, thread owners, uploads, files, injected failures,
    recordings) lives in memory and is guarded by a lock; the recording properties return snapshots.
    Each concern is a part of its own module, a base class here: ``Pages``, ``Instagram`` (built on
    ``Messenger``, itself on ``Handover`` and ``Attachments``) and ``Files``, all on ``GraphCore``.
    """

    def __init__(
        self, app_id: str = DEFAULT_APP_ID, app_name: str = DEFAULT_APP_NAME, version: str = DEFAULT_VERSION
    ) -> None:
        super().__init__(app_id, app_name, version)
        self._init_state()
        self._init_echo_delivery()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._routes: dict[type, dict[tuple[str, str | None], Handler]] = {
            Page: {
                ("GET", None): self._get_page,
                ("GET", "subscribed_apps"): self._subscribed_apps,
                ("POST", "subscribed_apps"): self._subscribed_apps,
                ("DELETE", "subscribed_apps"): self._subscribed_apps,
                ("POST", "messages"): self._send,
                ("POST", "message_attachments"): self._upload_attachment,
                ("POST", "pass_thread_control"): self._pass_thread_control,
                ("POST", "take_thread_control"): self._take_thread_control,
                ("POST", "request_thread_control"): self._request_thread_control,
                ("GET", "thread_owner"): self._get_thread_owner,
            },
            User: {
                ("GET", None): self._get_user,
                ("GET", "accounts"): self._accounts,
            },
            Contact: {("GET", None): self._get_contact},
            InstagramAccount: {("GET", None): self._get_instagram_account},
            InstagramContact: {("GET", None): self._get_instagram_contact},
        }
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "DELETE", "PUT"])])

    def _init_state(self) -> None:
        self.latency_ms = 0
        """Milliseconds added to every Graph answer; settable at any time."""
        self._failures: list[_Failure] = []
        self._requests: list[RecordedRequest] = []
        self._init_core_state()
        self._init_pages_state()
        self._init_handover_state()
        self._init_attachments_state()
        self._init_messenger_state()
        self._init_instagram_state()
        self._init_files_state()

    # --- lifecycle ---

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
        self._shutdown_echo_delivery()
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
        """Forget everything a test set up or caused: pages, users, contacts, tokens, Instagram
        accounts, thread owners and roles, uploads, served files, failures, subscriptions, recordings
        and the echo target; ``latency_ms`` goes back to 0 and ``strict_recipients`` to False."""
        with self._lock:
            self._init_state()

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
        rule.error.setdefault("fbtrace_id", trace_id())
        with self._lock:
            self._failures.append(rule)

    # --- recordings ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every Graph API request received, oldest first (served files are not in it)."""
        with self._lock:
            return list(self._requests)

    def find_requests(self, method: str = "*", path: str = "*") -> list[RecordedRequest]:
        """The recorded requests whose method and path match the given globs."""
        return [
            request
            for request in self.requests
            if fnmatch.fnmatchcase(request.method, method.upper()) and fnmatch.fnmatchcase(request.path, path)
        ]

    # --- HTTP ---

    async def _handle(self, request: Request) -> Response:
        file = self._file_for(request)
        if file is not None:
            return await self._serve_file(request, file)
        raw = await request.body()
        segments = [segment for segment in request.url.path.split("/") if segment]
        version = self.version
        if segments and _VERSION_RE.match(segments[0]):
            version = segments.pop(0)
        path = "/" + "/".join(segments)
        query = dict(request.query_params)
        body = parse_body(request.headers.get("content-type", ""), raw)
        token = extract_token(request, query, body.form, body.json)
        method = request.method
        recorded = RecordedRequest(method, path, query, copy.deepcopy(body.json), token, body.form, version, body.files)
        with self._lock:
            self._requests.append(recorded)
            failure = self._take_failure(method, path)
        delay_ms = self.latency_ms + (failure.delay_ms if failure else 0)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if failure is not None:
            return self._error_response(failure.error, failure.status, version)
        params: dict[str, Any] = {**query, **body.form, **(body.json if isinstance(body.json, dict) else {})}
        params.pop("access_token", None)
        origin = f"{request.url.scheme}://{request.url.netloc}"
        call = Call(method, path, version, query, params, token, origin, body.files)
        try:
            if body.error is not None:
                raise body.error
            await self._prefetch(call)
            with self._lock:
                payload = self._dispatch(call)
        except GraphError as exc:
            return self._error_response(exc.error, exc.status, version)
        return JSONResponse(payload, headers=self._headers(version))

    @staticmethod
    def _headers(version: str) -> dict[str, str]:
        return {"facebook-api-version": version, "x-fb-trace-id": trace_id()}

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

    def _dispatch(self, call: Call) -> dict[str, Any]:
        caller = self._authenticate(call.token)
        segments = [segment for segment in call.path.split("/") if segment]
        if not segments:
            raise unsupported(call.method, "")
        node_id, edge, rest = segments[0], (segments[1] if len(segments) > 1 else None), segments[2:]
        if rest:
            raise unknown_path(rest)
        node = self._resolve(node_id, caller, call.method)
        handler = self._routes[type(node)].get((call.method, edge))
        if handler is not None:
            return handler(call, caller, node)
        if edge is None:
            raise unsupported(call.method, node_id)
        if call.method == "GET":
            raise nonexisting_field(edge, NODE_TYPES[type(node)])
        raise unknown_path([edge])

    def _resolve(self, node_id: str, caller: Caller, method: str) -> Node:
        if node_id == "me":
            return caller
        if isinstance(caller, User) and node_id == caller.id:
            return caller
        for nodes in (self._pages, self._contacts, self._instagram_accounts, self._instagram_contacts):
            if node_id in nodes:
                return nodes[node_id]
        raise unsupported(method, node_id)

    def _get_user(self, call: Call, caller: Caller, user: User) -> dict[str, Any]:
        fields = requested_fields(call.params.get("fields"), ("name", "id"))
        return render("User", {"id": user.id, "name": user.name}, fields)

    def _send(self, call: Call, caller: Caller, page: Page) -> dict[str, Any]:
        """The Send API, for both platforms: the recipient says which one."""
        page = self._require_page_token(call, caller, page)
        recipient = json_param(call.params, "recipient")
        if not isinstance(recipient, dict) or not recipient:
            raise missing_parameter("recipient")
        if recipient.get("notification_messages_token"):
            return self._send_notification(call, page, recipient)
        if not recipient.get("id"):
            raise oauth_error("(#100) param recipient must be non-empty.")
        if str(recipient["id"]) in self._instagram_contacts:
            return self._send_instagram(call, page, recipient)
        return self._send_messenger(call, page, recipient)
