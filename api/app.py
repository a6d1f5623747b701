"""The Starlette application: routes, error handlers, auth."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from airy_actors.config import Settings, get_settings
from airy_actors.metrics import process_ended
from airy_actors.processes import stop_with_parent
from airy_actors.runtime import prepare_process
from api import facebook_writer, send_writer
from api.auth import SystemTokenAuth
from api.errors import EXCEPTION_HANDLERS
from api.event_hub import EventHub
from api.request_metrics import RequestMetrics
from api.routes import (
    channels,
    conversations,
    documentation,
    event_stream,
    events,
    facebook_webhook,
    handover,
    health,
    integrations,
    media,
    metrics,
    sending,
)
from api.routes.instagram import ROUTES as INSTAGRAM_ROUTES


def routes() -> list[Route]:
    """Every endpoint; each declares its operation (api.operations), which /openapi.json documents."""
    return [
        Route("/facebook", facebook_webhook.verify, methods=["GET"]),
        # Served ahead of the routing (Api.__call__) and never reached here; listed so that it is documented.
        Route("/facebook", facebook_webhook.receive, methods=["POST"]),
        Route("/health", health.health, methods=["GET"]),
        Route("/conversations.list", conversations.conversations_list, methods=["POST"]),
        Route("/conversations.info", conversations.conversations_info, methods=["POST"]),
        Route("/conversations.read", conversations.conversations_read, methods=["POST"]),
        Route("/messages.list", conversations.messages_list, methods=["POST"]),
        Route("/messages.info", conversations.messages_info, methods=["POST"]),
        *channels.ROUTES,
        *INSTAGRAM_ROUTES,
        *sending.ROUTES,
        *integrations.ROUTES,
        *events.ROUTES,
        *event_stream.ROUTES,
        *media.ROUTES,
        *handover.ROUTES,
    ]


class Api(Starlette):
    """The API: ``POST /facebook`` first, then Starlette's middleware and routes for everything else.

    Facebook's deliveries are most of the traffic and need none of the middleware (the webhook is open to all,
    and answers its own errors with the app's handlers); the routing and middleware would cost each of them as
    much CPU again as the endpoint itself.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/facebook" and scope["method"] == "POST":
            scope["app"] = self
            await facebook_webhook.receive(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


WRITERS_CLOSE_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """The webhook's writer starts with the web, to drain a spool that a stopped web left behind, and so does
    the event stream's reader of the outbox.

    When the web stops, its writers finish: the webhook requests they hold back are enqueued at once. Otherwise
    those answered in the last few milliseconds would wait for the sweeper (30 s and more).
    """
    facebook_writer.writer.start()
    hub = EventHub(buffer_events=app.state.settings.stream_buffer_events)
    app.state.event_hub = hub
    hub.start()
    yield
    await hub.stop()
    for writer in (facebook_writer.writer, send_writer.writer):
        await asyncio.to_thread(writer.close, WRITERS_CLOSE_TIMEOUT_S)
    process_ended()


def create_app(settings: Settings | None = None) -> Api:
    """Builds the app. The process must have been prepared (database open, broker built)."""
    settings = settings or get_settings()
    observed = settings.metrics  # AIRY_METRICS=off: neither the endpoint nor the middleware
    app = Api(
        lifespan=lifespan,
        routes=[*routes(), *(metrics.ROUTES if observed else []), *documentation.ROUTES],
        middleware=[
            *([Middleware(RequestMetrics)] if observed else []),
            Middleware(SystemTokenAuth, token=settings.system_token),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    return app


WEB_WORKER_CONNECTIONS = 16


def app_from_environment() -> Api:
    """The app of one of several web processes that uvicorn starts (``airy-actors web --workers N``).

    Each process prepares itself (settings from the environment, its own database pool and broker connection),
    as ``airy-actors web`` does before it serves. Its pool is half a lone web's: two of them together hold no
    more of PostgreSQL's connections (100 by default, shared with the workers) than one did.
    """
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and supervisor.pid is not None:
        stop_with_parent(supervisor.pid)
    return create_app(prepare_process(max_connections=WEB_WORKER_CONNECTIONS))
