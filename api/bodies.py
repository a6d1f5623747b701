"""Reading request bodies: size limits, then JSON decoded strictly into the endpoint's schema (api.schemas)."""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from airy_actors import strict_json
from airy_actors.errors import BadRequest, PayloadTooLarge

S = TypeVar("S")

MAX_BODY_BYTES = 1_048_576  # 1 MiB, exactly, is accepted


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body of ``request``, refusing more than ``limit`` bytes before reading them all.

    Raises:
      PayloadTooLarge: when the body (declared or actual) is over the limit.
      BadRequest: when Content-Length is not a number.
      ClientDisconnect: when the client went away before sending the whole body.
    """
    raw = await read_raw(request.receive, request.headers.get("content-length"), limit)
    if raw is None:
        raise ClientDisconnect()
    return raw


async def read_raw(receive: Receive, declared: str | bytes | None, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The raw body from ASGI ``receive``, refusing more than ``limit`` bytes before reading them all.

    Parameters:
      declared: the request's Content-Length header, if it has one.

    Returns:
      The body; None when the client went away before sending all of it (nobody is left to answer).

    Raises:
      PayloadTooLarge: when the body (declared or actual) is over the limit.
      BadRequest: when Content-Length is not a number.
    """
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length must be a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_json(request: Request, schema: type[S]) -> S:
    """The request's body decoded into ``schema``; an empty body is an empty object.

    Raises:
      PayloadTooLarge: when the body is over 1 MiB.
      BadRequest: when it is not strict JSON (airy_actors.strict_json) or not of ``schema``, naming the field
        or the offending token.
      ClientDisconnect: when the client went away before sending the whole body.
    """
    raw = await read_body(request)
    return strict_json.loads(raw if raw.strip() else b"{}", schema)
