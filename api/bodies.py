"""Reading request bodies: size limits, strict JSON, and the conversion into the endpoint's schema (api.schemas)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from airy_actors.errors import BadRequest, PayloadTooLarge
from api.field_errors import describe

S = TypeVar("S")

MAX_BODY_BYTES = 1_048_576  # 1 MiB, exactly, is accepted
MAX_DEPTH = 64  # nesting levels of a request body


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
    """Decodes a JSON body strictly. Raises BadRequest naming the problem, or the offending token.

    Refused: what is not UTF-8 JSON, ``NaN`` and ``Infinity`` (not JSON, and no column or client takes them),
    lone surrogates (``"\\ud800"``: no database stores them), numbers beyond a double, and nesting deeper than
    :data:`MAX_DEPTH` levels.
    """
    if not raw.strip():
        raise BadRequest("body is empty; a JSON object is expected")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {_refusal(raw, exc)}") from None
    if _deeper_than(raw, MAX_DEPTH):
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels")
    return value


def _refusal(raw: bytes, error: orjson.JSONDecodeError) -> str:
    """What is wrong at the error's position, naming the token when it is one JSON refuses (NaN, Infinity)."""
    try:
        raw.decode("utf-8")  # only on the way to an error: orjson says "not valid UTF-8" of lone surrogates too
    except UnicodeDecodeError:
        return "it is not UTF-8"
    found = raw[error.pos : error.pos + 9]
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        if found.startswith(token):
            return f"{token.decode()} is not allowed"
    if "surrogate" in error.msg:
        return f"a lone surrogate (half of a UTF-16 pair) is not allowed, at character {error.pos}"
    if "depth" in error.msg:
        return f"nesting deeper than {MAX_DEPTH} levels is not allowed"
    return f"{error.msg} at character {error.pos}"


_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_AS_BRACES = bytes.maketrans(b"[]", b"{}")  # in a valid document every bracket closes its own kind


def _deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the JSON document ``raw`` (valid: decoded already) nests deeper than ``limit`` levels.

    Bytes methods only, which run at C speed: walking the decoded value in Python cost the webhook an eighth of
    its CPU. A body with no more brackets than ``limit`` cannot be deeper. Otherwise the strings are cut out
    (their escaped backslashes and quotes first, so that every quote left opens or closes one), the brackets
    kept (as braces), and the innermost empty pairs removed, one level a pass: what is left after ``limit``
    passes is deeper.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    outside_strings = b"".join(raw.replace(b"\\\\", b"").replace(b'\\"', b"").split(b'"')[::2])
    brackets = outside_strings.translate(_AS_BRACES, _NOT_BRACKETS)
    for _ in range(limit):
        brackets = brackets.replace(b"{}", b"")
        if not brackets:
            return False
    return True


def require_json_object(raw: bytes) -> None:
    """Raises BadRequest unless ``raw`` is a JSON object: the webhook's check of every delivery, tolerant.

    As strict as :func:`parse_json` (NaN, Infinity, deep nesting, invalid UTF-8 are refused), but for what Meta
    really sends: a text cut inside an emoji, a lone surrogate, is accepted (the ingestion stores it as U+FFFD).
    orjson answers most bodies several times faster than the standard library, which only reads, strictly
    otherwise, the bodies orjson refused for a surrogate.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if "surrogate" not in error.msg:
            raise BadRequest(f"body is not valid JSON: {_refusal(raw, error)}") from None
        value = _with_surrogates(raw, error)
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    if _deeper_than(raw, MAX_DEPTH):
        raise BadRequest(f"body is nested deeper than {MAX_DEPTH} levels")


def _with_surrogates(raw: bytes, error: orjson.JSONDecodeError) -> Any:
    """``raw`` read by the standard library, lone surrogates allowed, NaN and Infinity not."""

    def refuse(token: str) -> None:
        raise BadRequest(f"body is not valid JSON: {token} is not allowed")

    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (UnicodeDecodeError, RecursionError, ValueError):
        raise BadRequest(f"body is not valid JSON: {_refusal(raw, error)}") from None


async def read_json(request: Request, schema: type[S]) -> S:
    """The request's JSON body converted into ``schema`` (an :mod:`api.schemas` Struct); no body is ``{}``.

    The body is read by :func:`parse_json`, whose refusals name the offending token (NaN, a lone surrogate,
    nesting past 64 levels), then converted strictly (no string taken for a number, nor the reverse); a value
    that does not fit is refused naming its field (:func:`api.field_errors.describe`).

    Raises:
      PayloadTooLarge: when the body is over 1 MiB.
      BadRequest: when it is not strict JSON, not an object, or not of ``schema``.
      ClientDisconnect: when the client went away before sending the whole body.
    """
    raw = await read_body(request)
    value = parse_json(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    try:
        return msgspec.convert(value, schema, strict=True)
    except msgspec.ValidationError as error:
        raise BadRequest(describe(error, value, schema)) from None
