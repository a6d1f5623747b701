"""The Facebook Graph API client, and the one place where Graph errors are classified.

The client wraps one injected :class:`httpx.Client`, so tests can hand it the fake Graph server's URL or an
``httpx.MockTransport``. Every call is relative to ``FACEBOOK_GRAPH_URL`` (version included) and has an
explicit timeout. Tokens travel in the query string, as Facebook documents, and never into a log line: the
client logs paths, not URLs.
"""

from __future__ import annotations

import enum
import json as jsonlib
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlencode

import httpx

from airy_actors.config import get_settings
from airy_actors.errors import AiryError, BadRequest, Unavailable

logger = logging.getLogger(__name__)

WEBHOOK_FIELDS = (
    "messages",
    "message_echoes",
    "messaging_postbacks",
    "message_reactions",
    "message_edits",
    "message_deliveries",
    "message_reads",
    "messaging_referrals",
    "messaging_optins",
    "messaging_handovers",
    "standby",
)


class ErrorKind(enum.Enum):
    """What an actor should do about a Graph error."""

    TOKEN_INVALID = "token_invalid"  # the page must be reconnected: fail, flag the channel
    PERMISSION = "permission"  # the token lacks a permission: fail
    THROTTLED = "throttled"  # slow down and retry
    TRANSIENT = "transient"  # Facebook or the network hiccuped: retry
    PERMANENT = "permanent"  # the request itself is wrong or can never succeed: fail


THROTTLING_CODES = {4, 17, 32, 613} | set(range(80001, 80015))
TRANSIENT_CODES = {1, 2}
TOKEN_CODES = {102, 190}
TOKEN_SUBCODES = {458, 459, 460, 463, 464, 467, 492}
# "Sent outside of allowed window": Messenger's subcode, and Instagram's.
WINDOW_SUBCODES = {2018278, 2534022}


class GraphError(AiryError):
    """Facebook answered with an error, or could not be reached.

    Attributes:
      kind: how to treat it (see :class:`ErrorKind`).
      code: Facebook's ``error.code`` (None when Facebook was unreachable).
      subcode: Facebook's ``error.error_subcode``.
      retry_after_ms: how long Facebook asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        code: int | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.subcode = subcode
        self.http_status = http_status
        self.retry_after_ms = retry_after_ms
        self.status_code = 503 if kind in (ErrorKind.TRANSIENT, ErrorKind.THROTTLED) else 400

    @property
    def retryable(self) -> bool:
        return self.kind in (ErrorKind.TRANSIENT, ErrorKind.THROTTLED)

    def as_client_error(self) -> AiryError:
        """The error a synchronous endpoint answers with: 400 with Facebook's reason, or 503."""
        if self.retryable:
            return Unavailable(f"Facebook is unavailable: {self.message}")
        return BadRequest(self.message)


def classify(http_status: int, body: Any) -> GraphError:
    """Turns one Graph error answer into a :class:`GraphError`.

    Parameters:
      http_status: the HTTP status of the answer.
      body: the decoded JSON body (``{"error": {...}}``), or anything else Facebook sent.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        kind = ErrorKind.TRANSIENT if http_status >= 500 or http_status == 429 else ErrorKind.PERMANENT
        return GraphError(f"Facebook answered HTTP {http_status}", kind=kind, http_status=http_status)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or f"Facebook error {code}")
    if code in TOKEN_CODES or subcode in TOKEN_SUBCODES:
        kind = ErrorKind.TOKEN_INVALID
    elif code in THROTTLING_CODES or http_status == 429:
        kind = ErrorKind.THROTTLED
    elif code in TRANSIENT_CODES or error.get("is_transient") is True or http_status >= 500:
        kind = ErrorKind.TRANSIENT
    elif code == 10 and subcode in WINDOW_SUBCODES:  # outside the messaging window: a policy, not a permission
        kind = ErrorKind.PERMANENT
    elif code in (3, 10) or (code is not None and 200 <= code <= 299):
        kind = ErrorKind.PERMISSION
    else:
        kind = ErrorKind.PERMANENT
    return GraphError(message, kind=kind, code=code, subcode=subcode, http_status=http_status)


class GraphClient:
    """Facebook's Graph API, the calls airy-actors makes.

    Each thread calls through an :class:`httpx.Client` of its own, which keeps its one connection open. A
    client shared by the threads of a worker serialised them on its connection pool's lock and scanned the
    pool under it at every call: with dozens of threads sending at once, a large share of a send's CPU
    (bench/send.py).

    Parameters:
      base_url: ``FACEBOOK_GRAPH_URL``, version included.
      timeout_ms: the timeout of each call (connect, read, write and pool alike).
      transport: an httpx transport for tests; the default is the network.
    """

    def __init__(
        self, base_url: str, *, timeout_ms: int = 10_000, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_ms / 1000)
        self.transport = transport
        # One TLS context for every thread's client: building one loads the CA bundle, costly in CPU and memory,
        # and a worker may run hundreds of sending threads.
        self._tls = httpx.create_ssl_context()
        self._local = threading.local()
        # Every client made, to close them; a thread's goes with the thread.
        self._clients: weakref.WeakSet[httpx.Client] = weakref.WeakSet()
        self._lock = threading.Lock()

    @property
    def http(self) -> httpx.Client:
        """This thread's httpx client."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=self.timeout,
                transport=self.transport,
                verify=self._tls,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=1),
            )
            self._local.client = client
            with self._lock:
                self._clients.add(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()

    # --- the calls -------------------------------------------------------------------------------------

    def me(self, token: str, fields: str = "id,name") -> dict[str, Any]:
        """The owner of ``token``: the page for a page token, the user for a user token."""
        return self.request("GET", "/me", token, params={"fields": fields})

    def page(self, page_id: str, token: str) -> dict[str, Any]:
        """A page's id, name and picture (``picture.data.url``)."""
        return self.request("GET", f"/{page_id}", token, params={"fields": "id,name,picture"})

    def subscribe_app(self, page_id: str, token: str, fields: tuple[str, ...] = WEBHOOK_FIELDS) -> None:
        """Subscribes our app to the page's webhook ``fields``."""
        self.request("POST", f"/{page_id}/subscribed_apps", token, params={"subscribed_fields": ",".join(fields)})

    def unsubscribe_app(self, page_id: str, token: str) -> None:
        """Removes our app's webhook subscription from the page."""
        self.request("DELETE", f"/{page_id}/subscribed_apps", token)

    def subscribed_apps(self, page_id: str, token: str) -> list[dict[str, Any]]:
        """The apps subscribed to the page's webhook (``id``, ``name``, ``subscribed_fields``)."""
        return list(self.request("GET", f"/{page_id}/subscribed_apps", token).get("data") or [])

    def managed_pages(self, user_token: str, *, page_size: int = 25) -> Iterator[list[dict[str, Any]]]:
        """The pages a user token manages, one Graph result page at a time, following ``paging.next``.

        Each page has its ``id``, ``name``, ``access_token`` and, when an Instagram account is linked to it,
        ``instagram_business_account: {"id"}``.
        """
        fields = "id,name,access_token,instagram_business_account"
        answer = self.request("GET", "/me/accounts", user_token, params={"fields": fields, "limit": str(page_size)})
        while True:
            yield list(answer.get("data") or [])
            next_url = (answer.get("paging") or {}).get("next")
            if not next_url:
                return
            answer = self._send("GET", str(next_url), path="/me/accounts (next)")

    def profile(self, psid: str, token: str) -> dict[str, Any]:
        """A contact's ``first_name``, ``last_name`` and ``profile_pic``."""
        return self.request("GET", f"/{psid}", token, params={"fields": "first_name,last_name,profile_pic"})

    def upload_attachment(self, token: str, *, kind: str, content_type: str, file: IO[bytes]) -> str:
        """Uploads a file with the Attachment Upload API, reusable; returns its ``attachment_id``."""
        message = {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
        query = urlencode({"access_token": token})
        answer = self._send(
            "POST",
            f"{self.base_url}/me/message_attachments?{query}",
            path="/me/message_attachments",
            data={"message": jsonlib.dumps(message)},
            files={"filedata": ("upload", file, content_type)},
        )
        attachment_id = answer.get("attachment_id")
        if not isinstance(attachment_id, str | int):
            raise GraphError("Facebook answered the upload without an attachment_id", kind=ErrorKind.PERMANENT)
        return str(attachment_id)

    def pass_thread_control(self, token: str, psid: str, target_app_id: str, metadata: str | None) -> None:
        """Passes the contact's thread to ``target_app_id`` (handover protocol)."""
        body: dict[str, Any] = {"recipient": {"id": psid}, "target_app_id": target_app_id}
        if metadata is not None:
            body["metadata"] = metadata
        self.request("POST", "/me/pass_thread_control", token, json=body)

    def take_thread_control(self, token: str, psid: str, metadata: str | None) -> None:
        """Takes the contact's thread back for our app (handover protocol; the primary receiver may)."""
        body: dict[str, Any] = {"recipient": {"id": psid}}
        if metadata is not None:
            body["metadata"] = metadata
        self.request("POST", "/me/take_thread_control", token, json=body)

    def send_message(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Posts ``body`` to the Send API; returns ``{"recipient_id", "message_id"}``."""
        return self.request("POST", "/me/messages", token, json=body)

    # --- Instagram, through the page its account is linked to ---------------------------------------------

    def linked_instagram_account(self, page_id: str, token: str) -> str | None:
        """The id of the Instagram professional account linked to the page, or None when there is none."""
        answer = self.request("GET", f"/{page_id}", token, params={"fields": "instagram_business_account"})
        linked = answer.get("instagram_business_account")
        account_id = linked.get("id") if isinstance(linked, dict) else None
        return str(account_id) if isinstance(account_id, str | int) and account_id != "" else None

    def instagram_account(self, account_id: str, token: str) -> dict[str, Any]:
        """An Instagram account's ``id``, ``username`` and ``profile_picture_url`` (the page token of its page)."""
        return self.request("GET", f"/{account_id}", token, params={"fields": "id,username,profile_picture_url"})

    def instagram_profile(self, igsid: str, token: str) -> dict[str, Any]:
        """An Instagram contact's ``name``, ``username`` and ``profile_pic`` (each may be missing)."""
        return self.request("GET", f"/{igsid}", token, params={"fields": "name,username,profile_pic"})

    def send_instagram_message(self, page_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Posts ``body`` to the Send API of the account's page; returns ``{"recipient_id", "message_id"}``."""
        return self.request("POST", f"/{page_id}/messages", token, json=body)

    # --- the transport ---------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, token: str, *, params: dict[str, str] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """Calls ``path`` (relative to the base URL) with ``token``.

        Raises:
          GraphError: for every error answer, and when Facebook cannot be reached in time.
        """
        query = dict(params or {})
        query["access_token"] = token
        # The query goes into the URL as text: httpx parses a URL string once, and parses it again to merge
        # ``params`` into it, which was a tenth of a send's CPU.
        return self._send(method, f"{self.base_url}{path}?{urlencode(query)}", path=path, json=json)

    def _send(
        self,
        method: str,
        url: str,
        *,
        path: str,
        json: Any = None,
        data: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self.http.request(method, url, json=json, data=data, files=files)
        except httpx.TimeoutException:
            logger.warning("graph call timed out", extra={"method": method, "path": path})
            raise GraphError("Facebook did not answer in time", kind=ErrorKind.TRANSIENT) from None
        except httpx.HTTPError as exc:
            logger.warning("graph call failed", extra={"method": method, "path": path, "error": type(exc).__name__})
            raise GraphError("Facebook cannot be reached", kind=ErrorKind.TRANSIENT) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error or not isinstance(body, dict):
            error = classify(response.status_code, body)
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                error.retry_after_ms = int(retry_after) * 1000
            logger.info(
                "graph error",
                extra={
                    "method": method,
                    "path": path,
                    "status": response.status_code,
                    "code": error.code,
                    "subcode": error.subcode,
                    "kind": error.kind.value,
                },
            )
            raise error
        return body


_client: GraphClient | None = None


def get_graph_client() -> GraphClient:
    """This process's Graph client, built from the settings on first use."""
    global _client
    if _client is None:
        settings = get_settings()
        _client = GraphClient(settings.facebook_graph_url, timeout_ms=settings.graph_timeout_ms)
    return _client


def use_graph_client(client: GraphClient | None) -> None:
    """Replaces this process's Graph client (tests)."""
    global _client
    _client = client
