"""Turns every error into a JSON answer: the one place where exceptions meet HTTP statuses."""

from __future__ import annotations

import logging

import peewee
import redis
from playhouse.pool import MaxConnectionsExceeded
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from airy_actors.errors import AiryError

logger = logging.getLogger(__name__)


def error_response(status_code: int, message: str) -> JSONResponse:
    # A message may quote what the client sent; a lone surrogate in it would make the answer itself fail.
    return JSONResponse({"message": message.encode("utf-8", "replace").decode()}, status_code=status_code)


async def airy_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AiryError)
    return error_response(exc.status_code, exc.message)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    messages = {404: f"no endpoint {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response(503, "the database is unavailable; try again")


async def broker_error(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("broker unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response(503, "the message broker is unavailable; try again")


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unexpected error", extra={"path": request.url.path}, exc_info=exc)
    return error_response(500, "internal error; it has been logged")


EXCEPTION_HANDLERS = {
    AiryError: airy_error,
    HTTPException: http_error,
    peewee.OperationalError: database_error,
    peewee.InterfaceError: database_error,
    # Every pooled connection stayed busy for the pool's whole wait: the database is too slow to answer.
    MaxConnectionsExceeded: database_error,
    redis.RedisError: broker_error,
    Exception: unexpected_error,
}


async def answer_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answers ``exc`` as the app's exception handlers do, for an endpoint that the app serves ahead of them."""
    handler = next(EXCEPTION_HANDLERS[kind] for kind in type(exc).__mro__ if kind in EXCEPTION_HANDLERS)
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)
