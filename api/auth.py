"""The system token: when set, every endpoint but the webhook and /health needs it."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/facebook", "/health"})


class SystemTokenAuth:
    """A pure ASGI middleware comparing ``Authorization: Bearer <token>`` in constant time.

    Parameters:
      app: the wrapped application.
      token: ``AIRY_SYSTEM_TOKEN``; None leaves the API open.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "a Bearer token is required" if not given.startswith(b"Bearer ") else "the token is not valid"
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
