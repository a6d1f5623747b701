"""The system token: when set, every endpoint but the webhook, /health and signed media URLs needs it."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

# /openapi.json, /docs and Swagger UI's files are behind the token like every endpoint (README: OpenAPI).
OPEN_PATHS = frozenset({"/facebook", "/health"})
# Kept media (GET /media/<key>?sig=...): the signature is the capability, so a browser can show the file.
OPEN_PREFIX = "/media/"


class SystemTokenAuth:
    """A pure ASGI middleware requiring ``Authorization: Bearer <token>``, compared in constant time.

    The scheme is case-insensitive (RFC 9110: ``bearer`` is ``Bearer``); a request with several Authorization
    headers is refused, whatever they say, rather than trusting one of them. The token is never logged.

    Parameters:
      app: the wrapped application.
      token: ``AIRY_SYSTEM_TOKEN``; None leaves the API open.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self.expected is None or scope["type"] != "http" or path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            await self.app(scope, receive, send)
            return
        reason = self.refusal([value for name, value in scope["headers"] if name == b"authorization"])
        if reason is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"message": f"unauthorized: {reason}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def refusal(self, authorizations: list[bytes]) -> str | None:
        """Why these Authorization header values do not open the API; None when they do."""
        assert self.expected is not None
        if len(authorizations) > 1:
            return "several Authorization headers"
        scheme, _, token = authorizations[0].partition(b" ") if authorizations else (b"", b"", b"")
        if scheme.lower() != b"bearer":
            return "a Bearer token is required"
        if not hmac.compare_digest(token.strip(b" "), self.expected):
            return "the token is not valid"
        return None
