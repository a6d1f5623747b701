"""Each endpoint declares its operation: the body it takes, what it answers, and which errors it may give.

The one declaration serves twice: :func:`operation` reads and validates the body (:func:`api.bodies.read_json`,
into the schema) before the endpoint runs, and :mod:`api.openapi` documents every route from the declarations;
the document cannot drift from what is enforced. Endpoints that read no JSON body (GET endpoints, the webhook,
the upload) declare what the document says of them with :func:`documented`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from api.bodies import read_json

B = TypeVar("B")

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Text:
    """An answer that is not JSON: its media type (``text/plain``, ``text/html``), and what it holds."""

    media_type: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """What api.openapi says of an endpoint.

    Parameters:
      summary: one line, for the document.
      body: the request body's schema (a msgspec type); None when the endpoint takes none.
      answers: the answers by status that are not ``{"message"}`` errors: a msgspec type (JSON), a :class:`Text`,
        a JSON schema, or None for an answer without a body.
      errors: the statuses of the errors it may answer with ``{"message"}``, besides 401 (any endpoint behind
        the system token) and 413 (any that reads a body).
      public: whether it answers without the system token.
      description: more, for the document.
      parameters: OpenAPI parameter objects (path, query, headers), for the endpoints that read them.
      request_content: the request body's OpenAPI content map, for a body that is not JSON (an upload).
    """

    summary: str
    body: Any = None
    answers: Mapping[int, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    public: bool = False
    description: str = ""
    parameters: tuple[Mapping[str, Any], ...] = ()
    request_content: Mapping[str, Any] | None = None


def operation(
    summary: str,
    *,
    body: type[B],
    answers: Mapping[int, Any],
    errors: tuple[int, ...] = (),
    before: Callable[[Request], None] | None = None,
    description: str = "",
) -> Callable[[Callable[[Request, B], Awaitable[Response]]], Endpoint]:
    """Declares an endpoint that takes a JSON body: it is called with the request and the decoded ``body``.

    Parameters:
      errors: its error statuses besides 400 (every JSON body can be refused), 401 and 413.
      before: a check that runs before the body is read (a source that is not configured answers 503 whatever
        the body).
    """

    def declare(endpoint: Callable[[Request, B], Awaitable[Response]]) -> Endpoint:
        @functools.wraps(endpoint)
        async def handler(request: Request) -> Response:
            if before is not None:
                before(request)
            return await endpoint(request, await read_json(request, body))

        handler.operation = Operation(  # type: ignore[attr-defined]
            summary, body, answers, tuple(sorted({400, *errors})), description=description
        )
        return handler

    return declare


def documented(declared: Operation) -> Callable[[B], B]:
    """Declares an endpoint that reads no JSON body (a function or an ASGI app): only the document needs it."""

    def declare(endpoint: B) -> B:
        endpoint.operation = declared  # type: ignore[attr-defined]
        return endpoint

    return declare


def operation_of(endpoint: object) -> Operation | None:
    """The operation declared for ``endpoint`` (a function or an ASGI app), if any."""
    return getattr(endpoint, "operation", None)
