"""API requests counted by endpoint and status, and timed: ``airy_api_requests_total``,
``airy_api_request_duration_seconds``.

``POST /facebook`` is served ahead of the middleware (:class:`api.app.Api`) and counts its own outcomes.
"""

from __future__ import annotations

import time

from prometheus_client.metrics import Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airy_actors import metrics

UNMATCHED = "unmatched"


class RequestMetrics:
    """A pure ASGI middleware, outside the system token's, so that refused requests are counted too.

    The endpoint is the path of the route that served the request, never the request's own path, so that the
    label's values are the app's routes (a path no route matches counts as ``unmatched``). The time is taken
    to the answer's headers: an event stream stays open long after.

    Parameters:
      app: the wrapped application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counted: dict[tuple[str, int], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        async def observed_send(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                self._observe(scope, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            if not answered:  # the server's error middleware answers 500
                self._observe(scope, 500, time.perf_counter() - started)
            raise

    def _observe(self, scope: Scope, status: int, duration_s: float) -> None:
        endpoint = _endpoint(scope)
        counted = self._counted.get((endpoint, status))
        if counted is None:
            counted = self._counted[endpoint, status] = metrics.api_requests.labels(endpoint, str(status))
        timed = self._timed.get(endpoint)
        if timed is None:
            timed = self._timed[endpoint] = metrics.api_request_duration.labels(endpoint)
        counted.inc()
        timed.observe(duration_s)


def _endpoint(scope: Scope) -> str:
    """The path of the route that served the request, or would have, when it was refused before routing."""
    route = scope.get("route")
    if route is not None:
        return route.path
    for candidate in scope["app"].router.routes:  # refused before routing (401), or no route (404)
        if candidate.matches(scope)[0] is not Match.NONE:
            return candidate.path
    return UNMATCHED
