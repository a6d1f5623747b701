"""Reading request bodies: size limits, JSON, and typed fields whose errors name the field."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from airy_actors.errors import BadRequest, PayloadTooLarge
from airy_actors.pagination import page_size_from

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


def parse_json(raw: bytes) -> Any:
    """Decodes a JSON body. Raises BadRequest naming the problem."""
    if not raw.strip():
        raise BadRequest("body is empty; a JSON object is expected")
    try:
        text = raw.decode("utf-8")  # RFC 8259: JSON between systems is UTF-8; json.loads would guess
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def require_json_object(raw: bytes) -> None:
    """Raises BadRequest unless ``raw`` is a JSON object, naming the problem as :func:`parse_json` does.

    The webhook's check of every delivery: orjson answers it several times faster than the standard library.
    What orjson refuses or decodes otherwise (NaN, lone surrogates,
    integers over 64 bits) goes to :func:`parse_json`, so the same bodies are accepted as before.
    """
    try:
        if isinstance(orjson.loads(raw), dict):
            return
    except orjson.JSONDecodeError:
        pass
    if not isinstance(parse_json(raw), dict):
        raise BadRequest("body must be a JSON object")


class Body:
    """A JSON object body with typed accessors.

    Parameters:
      data: the decoded body; anything but an object is refused.
    """

    def __init__(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        self.data = data

    @classmethod
    async def of(cls, request: Request) -> Body:
        raw = await read_body(request)
        return cls(parse_json(raw) if raw.strip() else {})

    def string(self, name: str, *, max_length: int = 1024) -> str:
        """A required, non-empty string field."""
        value = self.optional_string(name, max_length=max_length)
        if value is None:
            raise BadRequest(f"{name} is required")
        return value

    def optional_string(self, name: str, *, max_length: int = 1024) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise BadRequest(f"{name} must not contain NUL characters")
        if not value.strip():
            raise BadRequest(f"{name} must not be empty")
        if len(value) > max_length:
            raise BadRequest(f"{name} must be at most {max_length} characters")
        return value

    def obj(self, name: str) -> dict[str, Any]:
        """A required JSON object field."""
        value = self.optional_obj(name)
        if value is None:
            raise BadRequest(f"{name} is required")
        return value

    def optional_obj(self, name: str) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadRequest(f"{name} must be an object")
        return value

    def optional_int(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"{name} must be an integer")
        return value

    def page(self) -> dict[str, Any]:
        """The paging fields of a list endpoint, ``cursor`` and ``page_size``, as its keyword arguments."""
        return {"cursor": self.optional_string("cursor"), "page_size": page_size_from(self.data.get("page_size"))}

    def optional_list(self, name: str) -> list[Any] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise BadRequest(f"{name} must be a list")
        return value
