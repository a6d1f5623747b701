"""Facebook's webhook: verification (GET) and event delivery (POST)."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from airy_actors.config import Settings
from airy_actors.errors import AiryError, BadRequest, Unavailable
from api.bodies import parse_json, read_body
from api.webhook_writer import writer


class Forbidden(AiryError):
    status_code = 403


def require_facebook(settings: Settings, *names: str) -> None:
    """Raises Unavailable (503) naming the Facebook variables that are not set."""
    missing = [name for name in settings.missing_facebook_variables if not names or name in names]
    if missing:
        raise Unavailable(f"the Facebook source is not configured: set {', '.join(missing)}")


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


async def receive(request: Request) -> Response:
    """``POST /facebook``: checks the signature, stores the request durably, answers 200; then it is enqueued."""
    settings: Settings = request.app.state.settings
    require_facebook(settings, "FACEBOOK_APP_SECRET")
    raw = await read_body(request)
    if not signature_is_valid(raw, request.headers, (settings.facebook_app_secret or "").encode()):
        raise Forbidden("the X-Hub-Signature-256 (or X-Hub-Signature) header does not sign this body")
    if not isinstance(parse_json(raw), dict):
        raise BadRequest("body must be a JSON object")
    await writer.store(raw)
    return JSONResponse({"status": "received"})


def signature_is_valid(body: bytes, headers: object, secret: bytes) -> bool:
    """Checks Facebook's HMAC of the raw body, SHA-256 first, SHA-1 when only that header is present."""
    for header, prefix, algorithm in (
        ("x-hub-signature-256", "sha256=", hashlib.sha256),
        ("x-hub-signature", "sha1=", hashlib.sha1),
    ):
        given = headers.get(header)  # type: ignore[attr-defined]
        if given is None:
            continue
        expected = prefix + hmac.new(secret, body, algorithm).hexdigest()
        return hmac.compare_digest(given.strip().lower().encode(), expected.encode())
    return False
