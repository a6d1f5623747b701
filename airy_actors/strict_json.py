"""The one JSON reader of every request body: strict for the API, tolerant of Meta's habits for the webhook.

What both refuse (SPEC section 2, "hostile or broken input"), each with a 400 that says what and where:

- ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON and which no column or client can take;
- nesting deeper than :data:`MAX_DEPTH` levels (the parsers recurse; a megabyte of ``[`` is a cheap attack);
- bodies that are not UTF-8, numbers beyond a double or of more than 4300 digits (converting those costs
  quadratic time).

The strict reader (:func:`loads`) also refuses lone surrogates (``"\\ud800"``, escaped or raw), which no
database can store; the tolerant one (:func:`loads_tolerant`, for Meta's webhook bodies) replaces them with
U+FFFD, since Meta really sends text cut inside an emoji. :func:`loads` decodes into a msgspec type (a
``msgspec.Struct`` describing a request body): wrong types, strings longer than their column, integers outside
their column, unknown fields are then refused too, and the message names the field (``page_id: expected a
string, got an integer``).

Speed: msgspec parses, validates and builds the result in one pass (about 2 µs for a ``messages.send``). It
refuses NaN, lone surrogates and invalid UTF-8 itself, so the standard library only runs, slowly, on a body
that msgspec refused, to say why (or, tolerant, to repair the surrogates). The depth is counted only when a
body has more than :data:`MAX_DEPTH` brackets.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, TypeVar, overload

import msgspec

from airy_actors.errors import BadRequest

T = TypeVar("T")

MAX_DEPTH = 64
# A string that a text column can hold and that says something: not blank, no NUL (PostgreSQL refuses NUL).
# The lookahead keeps it linear: a pattern like ``[^\x00]*\S[^\x00]*`` backtracks quadratically on blanks.
TEXT_PATTERN = r"^(?!\s*$)[^\x00]*$"
_PATTERN_MEANINGS = {TEXT_PATTERN: "must not be blank nor contain NUL characters"}


class InvalidJSON(BadRequest):
    """The body is not JSON that this service reads (malformed, NaN, too deep, not UTF-8 ...)."""


# --- reading ---------------------------------------------------------------------------------------------


@overload
def loads(data: bytes | str) -> Any: ...
@overload
def loads(data: bytes | str, type: type[T]) -> T: ...
def loads(data: bytes | str, type: Any = Any) -> Any:
    """Decodes a JSON document strictly, into ``type`` when one is given.

    Parameters:
      data: the JSON text, UTF-8 when it is bytes.
      type: what the document must be, as msgspec understands types (a ``Struct``, ``dict[str, Any]``...).

    Raises:
      InvalidJSON: when it is not JSON that this service reads, naming the offending token.
      BadRequest: when the document is not of ``type``, or holds a lone surrogate, naming the field.
    """
    _check_depth(data)
    try:
        return _decoder(type).decode(data)
    except msgspec.ValidationError as error:
        raise BadRequest(describe(error, type)) from None
    except (msgspec.DecodeError, UnicodeEncodeError) as error:
        document = _reparse(data, error)
        path = _lone_surrogate_path(document)
        if path is None:  # msgspec refused what the standard library took: say what msgspec said
            raise InvalidJSON(f"body is not valid JSON: {error}") from None
        raise BadRequest(f"{path}: contains a lone surrogate, which is not valid Unicode") from None


def loads_tolerant(data: bytes | str) -> Any:
    """Decodes a JSON document as Meta sends it: strict, except that lone surrogates become U+FFFD.

    Integers keep their exact value, however many digits they have up to 4300 (a timestamp past year 9999
    is a problem for the event, not for the request).

    Raises:
      InvalidJSON: when it is not JSON that this service reads, naming the offending token.
    """
    _check_depth(data)
    try:
        return _ANY.decode(data)
    except msgspec.ValidationError as error:  # only numbers out of range, for an untyped document
        raise InvalidJSON(f"body is not valid JSON: {describe(error)}") from None
    except (msgspec.DecodeError, UnicodeEncodeError) as error:
        document = _reparse(data, error)
        if _lone_surrogate_path(document) is None:
            raise InvalidJSON(f"body is not valid JSON: {error}") from None
        return _without_lone_surrogates(document)


def check_tolerant_object(data: bytes) -> None:
    """Raises what :func:`loads_tolerant` raises, or InvalidJSON when the document is not an object.

    The webhook's check of every delivery, which keeps the raw body: it builds nothing, and so costs half of
    a decode (6.5 µs against orjson's 13 for a request of ten messages). msgspec skips the values (``Raw``)
    while checking their syntax, NaN and escapes; UTF-8 is checked apart (ASCII first: Meta escapes the
    rest). A number is not converted, so one that no double holds passes here (as it did before), and is
    refused when the body is read.
    """
    _check_depth(data)
    if data.isascii() or _is_utf8(data):
        try:
            _OBJECT_SKIPPING_VALUES.decode(data)
            return
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # loads_tolerant repairs it, or says what is wrong
    if not isinstance(loads_tolerant(data), dict):
        raise InvalidJSON("body must be a JSON object")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


_ANY = msgspec.json.Decoder()
_OBJECT_SKIPPING_VALUES = msgspec.json.Decoder(dict[str, msgspec.Raw])


@lru_cache(maxsize=256)
def _decoder(type: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(type)


# --- depth -----------------------------------------------------------------------------------------------

_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_TO_SQUARE = bytes.maketrans(b"{}", b"[]")


def _check_depth(data: bytes | str) -> None:
    """Raises InvalidJSON when the document nests more than MAX_DEPTH arrays and objects."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _deeper_than(raw, MAX_DEPTH):
        raise InvalidJSON(f"body is not valid JSON: it nests arrays and objects deeper than {MAX_DEPTH} levels")


def _deeper_than(raw: bytes, levels: int) -> bool:
    """Whether the JSON text ``raw`` nests more than ``levels`` arrays and objects. Only bytes methods run.

    A document can only be that deep when it has more opening brackets than that, strings included: a
    webhook request of up to 14 messages is answered by two counts (2 µs for ten). Otherwise its structure is
    kept: escaped backslashes and quotes go, then everything but quotes and brackets; when every string
    holds no bracket, its quotes then come in pairs (``""``) and simply go too, else what lies between
    quotes is dropped. Then the innermost pairs are removed one level at a time (each ``replace`` removes
    every pair that holds nothing): whatever is left after ``levels`` rounds is deeper. 15 µs for a request
    of 16 messages, 45 for one of 50, where orjson's decode costs 20 and 65; a megabyte of 64-deep arrays,
    the worst case, 0.25 s. Malformed JSON may count either way; the decoder refuses it anyway.
    """
    if raw.count(b"[") + raw.count(b"{") <= levels:
        return False
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(None, _NOT_STRUCTURE)
    if structure.count(b'"') == 2 * structure.count(b'""'):
        brackets = structure.translate(_TO_SQUARE, b'"')
    else:
        brackets = b"".join(structure.split(b'"')[::2]).translate(_TO_SQUARE)
    if b"[" * (levels + 1) in brackets:  # the usual attack, answered without a round
        return True
    for _ in range(levels):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


# --- what msgspec refused --------------------------------------------------------------------------------


class _Refused(ValueError):
    pass


def _refuse_constant(token: str) -> Any:
    raise _Refused(f"{token} is not allowed")


def _finite_float(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"{token} is out of range")
    return value


def _reparse(data: bytes | str, error: Exception) -> Any:
    """Parses, with the standard library, a document that msgspec refused: to name the problem, or repair it.

    The standard library takes lone surrogates (escaped, or raw with ``surrogatepass``); for anything else
    that msgspec refused, it refuses too, and its message names the token and where it is.

    Raises:
      InvalidJSON: naming the problem, when it is not a lone surrogate.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise InvalidJSON("body is not UTF-8") from None
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _Refused as refused:
        raise InvalidJSON(f"body is not valid JSON: {refused}") from None
    except ValueError as invalid:  # json.JSONDecodeError, and integers of more than 4300 digits
        raise InvalidJSON(f"body is not valid JSON: {invalid}") from None
    except RecursionError:  # unreachable after _check_depth; kept so that no path can answer 500
        raise InvalidJSON(f"body is not valid JSON: {error}") from None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads has joined every valid pair into one character


def _lone_surrogate_path(value: Any, path: str = "body") -> str | None:
    """Where the first lone surrogate of ``value`` is (``message.text``, ``events[2]``), or None."""
    if isinstance(value, str):
        return path if _LONE_SURROGATE.search(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if _LONE_SURROGATE.search(key):  # the path says where, without the name that cannot be shown
                return f"{path} (the name of one of its fields)"
            found = _lone_surrogate_path(item, _path_name([path, key] if path != "body" else [key]))
            if found:
                return found
    return None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


# --- what a validation error says ------------------------------------------------------------------------

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENTS = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_KINDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "object": "an object",
    "array": "an array",
}
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`"), "expected"),
    (re.compile(r"Expected `(?P<kind>str|array|object)` of length (?P<op>[<>]=) (?P<n>\d+)"), "length"),
    (re.compile(r"Expected `array` of length (?P<n>\d+)"), "exact length"),
    (re.compile(r"Expected `(?P<kind>int|float)` (?P<op>[<>]=?) (?P<n>\S+)"), "bound"),
    (re.compile(r"Expected `str` matching regex '(?P<pattern>.*)'"), "pattern"),
    (re.compile(r"Invalid enum value (?P<value>.*)"), "enum"),
    (re.compile(r"Object missing required field `(?P<field>[^`]+)`"), "missing"),
    (re.compile(r"Object contains unknown field `(?P<field>[^`]+)`"), "unknown"),
    (re.compile(r"(Integer value|Number) out of range"), "range"),
]


def describe(error: msgspec.ValidationError, type: Any = Any, at: str = "") -> str:
    """msgspec's validation error as a message that starts with the field: ``message.text: expected a string``.

    Parameters:
      type: the type that was decoded; it names the allowed values and the known fields.
      at: the path of the document that was decoded, when it is part of a larger one (``message``).
    """
    matched = _AT.match(str(error))
    assert matched is not None  # the pattern matches any text
    what, path = matched["what"], matched["path"] or ""
    segments: list[str | int] = [
        name if name else (int(index) if index.isdigit() else -1) for name, index in _SEGMENTS.findall(path)
    ]
    prefix = [at] if at else []
    for rule, kind in _RULES:
        found = rule.fullmatch(what)
        if found is None:
            continue
        if kind in ("missing", "unknown"):
            field = _path_name([*prefix, *segments, found["field"]])
            if kind == "missing":
                return f"{field}: is required"
            known = _known_fields(type, segments)
            return f"{field}: is not a known field" + (f" ({', '.join(known)})" if known else "")
        return f"{_path_name([*prefix, *segments])}: {_saying(kind, found, type, segments)}"
    if not segments and not at:  # e.g. a message raised by a Struct's own check, which names its field
        return what
    return f"{_path_name([*prefix, *segments])}: {what[:1].lower()}{what[1:]}"


def _saying(kind: str, found: re.Match[str], type: Any, segments: list[str | int]) -> str:
    if kind == "expected":
        return f"expected {_kind(found['expected'])}, got {_kind(found['got'])}"
    if kind == "length":
        n, at_least = int(found["n"]), found["op"] == ">="
        unit = {"str": "characters", "array": "items", "object": "entries"}[found["kind"]]
        if at_least and n == 1:
            return "must not be empty"
        return f"must have at {'least' if at_least else 'most'} {n} {unit}"
    if kind == "exact length":
        return f"must have {found['n']} items"
    if kind == "bound":
        op, n = found["op"], found["n"]
        return {">=": f"must be at least {n}", "<=": f"must be at most {n}", ">": f"must be more than {n}"}.get(
            op, f"must be less than {n}"
        )
    if kind == "pattern":
        return _PATTERN_MEANINGS.get(found["pattern"].replace("\\\\", "\\"), f"must match {found['pattern']}")
    if kind == "enum":
        values = _allowed_values(type, segments)
        allowed = f"; expected one of {', '.join(values)}" if values else ""
        return f"{_shortened(found['value'])} is not allowed{allowed}"
    return "is out of range"


def _kind(names: str) -> str:
    kinds = [_KINDS.get(name, name) for name in names.split(" | ") if name != "null"] or ["null"]
    return " or ".join(kinds)


def _path_name(segments: list[str | int]) -> str:
    name = ""
    for segment in segments:
        if isinstance(segment, int):
            name += f"[{segment}]" if segment >= 0 else "[...]"
        else:
            segment = _shortened(segment)
            name += f".{segment}" if name else segment
    return name or "body"


def _shortened(text: str, limit: int = 64) -> str:
    """``text`` as a message may quote it: a client's megabyte-long field name is not repeated back."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def _type_at(type: Any, segments: list[str | int]) -> msgspec.inspect.Type | None:
    """The msgspec type found at ``segments`` inside ``type``: the one that the error is about."""
    info: msgspec.inspect.Type | None = msgspec.inspect.type_info(type)
    for segment in segments:
        info = _unwrapped(info)
        if isinstance(info, msgspec.inspect.StructType) and isinstance(segment, str):
            info = next((field.type for field in info.fields if field.encode_name == segment), None)
        elif isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.TupleType)) and isinstance(segment, int):
            items = getattr(info, "item_type", None)
            if items is None:  # a tuple of fixed types
                types = info.item_types  # type: ignore[union-attr]
                items = types[segment] if 0 <= segment < len(types) else None
            info = items
        elif isinstance(info, msgspec.inspect.DictType):
            info = info.value_type
        else:
            return None
    return _unwrapped(info)


def _unwrapped(info: msgspec.inspect.Type | None) -> msgspec.inspect.Type | None:
    """Without Annotated metadata, and without ``None`` in an optional type."""
    while True:
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        elif isinstance(info, msgspec.inspect.UnionType):
            others = [member for member in info.types if not isinstance(member, msgspec.inspect.NoneType)]
            if len(others) != 1:
                return info
            info = others[0]
        else:
            return info


def _known_fields(type: Any, segments: list[str | int]) -> list[str]:
    info = _type_at(type, segments)
    if isinstance(info, msgspec.inspect.StructType):
        return [field.encode_name for field in info.fields]
    return []


def _allowed_values(type: Any, segments: list[str | int]) -> list[str]:
    info = _type_at(type, segments)
    if isinstance(info, msgspec.inspect.LiteralType):
        return [str(value) for value in info.values]
    if isinstance(info, msgspec.inspect.EnumType):
        return [str(member.value) for member in info.cls]
    return []
