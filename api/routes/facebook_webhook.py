"""Facebook's webhook: verification (GET) and event delivery (POST)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from airy_actors import metrics
from airy_actors.config import Settings
from airy_actors.errors import AiryError, Unavailable
from api import answer_schemas, schemas
from api.bodies import read_raw, require_json_object
from api.errors import answer_error
from api.facebook_writer import writer
from api.operations import Operation, Text, documented

_RECEIVED = b'{"status":"received"}'
_RECEIVED_HEADERS = [(b"content-length", str(len(_RECEIVED)).encode()), (b"content-type", b"application/json")]
# Header, value prefix and hash of Facebook's signatures, in the order they are checked.
_SIGNATURES = (
    (b"x-hub-signature-256", b"sha256=", "sha256"),
    (b"x-hub-signature", b"sha1=", "sha1"),
)


class Forbidden(AiryError):
    status_code = 403


def require_facebook(settings: Settings, *names: str) -> None:
    """Raises Unavailable (503) naming the Facebook variables that are not set."""
    missing = [name for name in settings.missing_facebook_variables if not names or name in names]
    if missing:
        raise Unavailable(f"the Facebook source is not configured: set {', '.join(missing)}")


def facebook_configured(request: Request) -> None:
    """Answers 503 naming the Facebook variables that are not set: an endpoint's check before it reads its body."""
    require_facebook(request.app.state.settings)


@documented(
    Operation(
        "Facebook's subscription challenge",
        answers={200: Text("text/plain")},
        errors=(403, 503),
        public=True,
        description="Answers `hub.challenge` when `hub.mode` is `subscribe` and `hub.verify_token` is "
        "FACEBOOK_WEBHOOK_SECRET.",
        parameters=tuple(
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in ("hub.mode", "hub.verify_token", "hub.challenge")
        ),
    )
)
async def verify(request: Request) -> Response:
    """``GET /facebook``: answers Facebook's subscription challenge when the verify token matches."""
    settings: Settings = request.app.state.settings
    require_facebook(settings, "FACEBOOK_WEBHOOK_SECRET")
    params = request.query_params
    token = params.get("hub.verify_token", "")
    expected = settings.facebook_webhook_secret or ""
    if params.get("hub.mode") != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("hub.verify_token does not match, or hub.mode is not subscribe")
    return PlainTextResponse(params.get("hub.challenge", ""))


class Receiver:
    """``POST /facebook``: checks the signature, stores the request durably, answers 200; then it is enqueued.

    A plain ASGI app, which the app serves ahead of its middleware and routing (:class:`api.app.Api`):
    Facebook's deliveries are the API's heaviest traffic. Without a Request, a Response, the routing and the
    middleware, and with orjson's check of the JSON, a delivery costs the app half the CPU it did
    (bench/webhook_acceptance.py). Its errors are answered by the app's exception handlers.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._receive(scope, receive, send)
        except Exception as error:
            metrics.webhook_answered(await answer_error(scope, receive, send, error))

    async def _receive(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings: Settings = scope["app"].state.settings
        if not settings.facebook_app_secret:
            require_facebook(settings, "FACEBOOK_APP_SECRET")
        secret = (settings.facebook_app_secret or "").encode()
        headers = _Headers(scope["headers"])
        raw = await read_raw(receive, headers.content_length)
        if raw is None:
            metrics.WEBHOOK_DISCONNECTED.inc()
            return  # the client went away before sending the whole body: nobody to answer
        if not signature_is_valid(raw, headers.signatures, secret):
            raise Forbidden("the X-Hub-Signature-256 (or X-Hub-Signature) header does not sign this body")
        require_json_object(raw)
        await writer.submit(raw)
        metrics.WEBHOOK_ACCEPTED.inc()
        await send({"type": "http.response.start", "status": 200, "headers": _RECEIVED_HEADERS})
        await send({"type": "http.response.body", "body": _RECEIVED})


receive = documented(
    Operation(
        "Meta's webhook: signed Messenger and Instagram events",
        body=schemas.FacebookWebhook,
        answers={200: answer_schemas.Received},
        errors=(400, 403, 413, 503),
        public=True,
        description="Checked against X-Hub-Signature-256 (or X-Hub-Signature) with FACEBOOK_APP_SECRET, stored "
        "durably, then answered; the body must be a JSON object (NaN, Infinity and nesting past 64 levels are "
        "refused; a lone surrogate, as Meta may cut a text inside an emoji, is accepted). Served ahead of the "
        "app's routing and middleware, and read with orjson, not converted into its schema: the schema here only "
        "describes Meta's format.",
        parameters=({"name": "X-Hub-Signature-256", "in": "header", "required": False, "schema": {"type": "string"}},),
    )
)(Receiver())


class _Headers:
    """The request headers that the webhook reads, found in one pass; the first of repeated ones counts.

    Parameters:
      raw: the ASGI scope's headers (names in lower case).
    """

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        found: dict[bytes, bytes] = {}
        for name, value in raw:
            if name == b"content-length" or name.startswith(b"x-hub-signature"):
                found.setdefault(name, value)
        self.content_length = found.pop(b"content-length", None)
        self.signatures = found


def signature_is_valid(body: bytes, signatures: dict[bytes, bytes], secret: bytes) -> bool:
    """Checks Facebook's HMAC of the raw body, SHA-256 first, SHA-1 when only that header is present.

    Parameters:
      signatures: the signature headers' values by lower-case name.
    """
    for header, prefix, algorithm in _SIGNATURES:
        given = signatures.get(header)
        if given is None:
            continue
        expected = prefix + hmac.digest(secret, body, algorithm).hex().encode()
        return hmac.compare_digest(given.strip().lower(), expected)
    return False
