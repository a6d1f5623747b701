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
from api import docs, openapi, send_writer, webhook_writer
from api.auth import SystemTokenAuth
from api.errors import EXCEPTION_HANDLERS
from api.routes import channels, conversations, health, sending, webhook, webhooks


def routes() -> list[Route]:
    """Every endpoint; each declares its operation (api.operations), which /openapi.json documents."""
    return [
        Route("/facebook", webhook.verify, methods=["GET"]),
        # Served ahead of the routing (Api.__call__); listed so that it is documented, and answers 405 alike.
        Route("/facebook", webhook.receive, methods=["POST"]),
        Route("/health", health.health, methods=["GET"]),
        Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/docs", docs.docs, methods=["GET"]),
        Route("/conversations.list", conversations.conversations_list, methods=["POST"]),
        Route("/conversations.info", conversations.conversations_info, methods=["POST"]),
        Route("/conversations.read", conversations.conversations_read, methods=["POST"]),
        Route("/messages.list", conversations.messages_list, methods=["POST"]),
        Route("/messages.info", conversations.messages_info, methods=["POST"]),
        *channels.ROUTES,
        *sending.ROUTES,
        *webhooks.ROUTES,
    ]


class Api(Starlette):
    """The API: ``POST /facebook`` first, then Starlette's middleware and routes for everything else.

    Facebook's deliveries are most of the traffic and need none of the middleware (the webhook is open to all,
    and answers its own errors with the app's handlers); the routing and middleware cost each of them 6 µs of
    the web's CPU, half of what the endpoint costs.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/facebook" and scope["method"] == "POST":
            scope["app"] = self
            await webhook.receive(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


WRITERS_CLOSE_TIMEOUT_S = 5.0


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """When the web stops, its writers finish: the webhook requests they hold back are enqueued at once.

    Otherwise those answered in the last few milliseconds would wait for the sweeper (30 s and more).
    """
    yield
    for writer in (webhook_writer.writer, send_writer.writer):
        await asyncio.to_thread(writer.close, WRITERS_CLOSE_TIMEOUT_S)


def create_app(settings: Settings | None = None) -> Api:
    """Builds the app. The process must have been prepared (database open, broker built)."""
    settings = settings or get_settings()
    app = Api(
        lifespan=lifespan,
        routes=[*routes(), docs.assets()],
        middleware=[Middleware(SystemTokenAuth, token=settings.system_token)],
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
    from airy_actors.runtime import prepare_process, stop_with_parent

    supervisor = multiprocessing.parent_process()
    if supervisor is not None and supervisor.pid is not None:
        stop_with_parent(supervisor.pid)
    return create_app(prepare_process(max_connections=WEB_WORKER_CONNECTIONS))
