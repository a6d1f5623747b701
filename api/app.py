"""The Starlette application: routes, error handlers, auth."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from airy_actors.config import Settings, get_settings
from api.auth import SystemTokenAuth
from api.errors import EXCEPTION_HANDLERS
from api.routes import channels, conversations, health, sending, webhook, webhooks


def routes() -> list[Route]:
    return [
        Route("/facebook", webhook.verify, methods=["GET"]),
        Route("/facebook", webhook.receive, methods=["POST"]),
        Route("/health", health.health, methods=["GET"]),
        Route("/conversations.list", conversations.conversations_list, methods=["POST"]),
        Route("/conversations.info", conversations.conversations_info, methods=["POST"]),
        Route("/conversations.read", conversations.conversations_read, methods=["POST"]),
        Route("/messages.list", conversations.messages_list, methods=["POST"]),
        Route("/messages.info", conversations.messages_info, methods=["POST"]),
        *channels.ROUTES,
        *sending.ROUTES,
        *webhooks.ROUTES,
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    """Builds the app. The process must have been prepared (database open, broker built)."""
    settings = settings or get_settings()
    app = Starlette(
        routes=routes(),
        middleware=[Middleware(SystemTokenAuth, token=settings.system_token)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    return app


WEB_WORKER_CONNECTIONS = 16


def app_from_environment() -> Starlette:
    """The app of one of several web processes that uvicorn starts (``airy-actors web --workers N``).

    Each process prepares itself (settings from the environment, its own database pool and broker connection),
    as ``airy-actors web`` does before it serves. Its pool is half a lone web's: two of them together hold no
    more of PostgreSQL's connections (100 by default, shared with the workers) than one did.
    """
    from airy_actors.runtime import prepare_process

    return create_app(prepare_process(max_connections=WEB_WORKER_CONNECTIONS))
