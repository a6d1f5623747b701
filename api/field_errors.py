"""msgspec's validation errors said in the API's words, naming the field: ``conversation_id is required``.

msgspec says ``Object missing required field `x` - at `$.a``` or ``Expected `str`, got `int` - at `$.a.b```;
clients of this API have always read ``a.x is required`` and ``a.b must be a string`` (SPEC section 2: an
error names the field), and tests hold the service to those words. The error is translated from its text,
the JSON path in it, the value found there and the type declared there.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import inspect

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_WRONG_TYPE = re.compile(r"^Expected `(?P<expected>[^`| ]+)[^`]*`, got `(?P<got>[^`]+)`$")
_TOO_LONG = re.compile(r"^Expected `str` of length <= (?P<limit>\d+)$")
_TOO_MANY = re.compile(r"^Expected `(object|array)` of length <= (?P<limit>\d+)$")
_TOO_FEW = re.compile(r"^Expected `(object|array)` of length >= 1$")
_NOT_TEXT = re.compile(r"^Expected `str` (matching regex .*|of length >= \d+)$", re.DOTALL)
_ENUM = re.compile(r"^Invalid enum value ")

_NOUNS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "a list",
}


def describe(error: msgspec.ValidationError, value: Any, schema: type) -> str:
    """What is wrong with ``value``, decoded into ``schema``, in the API's words, naming the field.

    Parameters:
      error: what msgspec found.
      value: the decoded JSON body that ``schema`` refused.
      schema: the Struct it was converted into.
    """
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any text
    what, segments = match["what"], _segments(match["path"] or "")
    field = _display(segments)

    if missing := _MISSING.match(what):
        return f"{_join(field, missing['name'])} is required"
    if unknown := _UNKNOWN.match(what):
        declared = _struct_at(schema, segments)
        known_as = getattr(declared, "known_as", "field")
        known = ", ".join(declared.__struct_fields__) if declared is not None else ""
        return f"{_join(field, unknown['name'])} is not a known {known_as} ({known})"
    if wrong := _WRONG_TYPE.match(what):
        if wrong["got"] == "null":
            return f"{field} is required"
        return f"{field} must be {_NOUNS.get(wrong['expected'], wrong['expected'])}"
    if too_long := _TOO_LONG.match(what):
        return f"{field} must be at most {too_long['limit']} characters"
    if too_many := _TOO_MANY.match(what):
        return f"{field} must have at most {too_many['limit']} entries"
    if _TOO_FEW.match(what):
        hint = _extra_at(schema, segments).get("when_empty")
        return f"{field} must not be empty: {hint}" if hint else f"{field} must not be empty"
    if _NOT_TEXT.match(what):
        found = _value_at(value, segments)
        if isinstance(found, str) and "\x00" in found:  # PostgreSQL text cannot hold NUL
            return f"{field} must not contain NUL characters"
        return f"{field} must not be empty"
    if _ENUM.match(what):
        allowed = ", ".join(str(choice) for choice in _choices_at(schema, segments))
        return f"{field} must be one of {allowed}, not {_value_at(value, segments)!r}"
    return f"{field}: {what[:1].lower()}{what[1:]}" if field else what


def _segments(path: str) -> list[str | int]:
    """``.filters.channel_id`` → ``["filters", "channel_id"]``; ``[2]`` → 2; a dict's value ``[...]`` → ``"..."``."""
    segments: list[str | int] = []
    for name, index in _SEGMENT.findall(path):
        segments.append(name if name else (int(index) if index.isdigit() else "..."))
    return segments


def _display(segments: list[str | int]) -> str:
    shown = ""
    for segment in segments:
        if isinstance(segment, int):
            shown += f"[{segment}]"
        elif segment != "...":
            shown = _join(shown, segment)
    return shown


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _value_at(value: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(segment, int) and isinstance(value, list) and segment < len(value):
            value = value[segment]
        elif isinstance(segment, str) and isinstance(value, dict):
            value = value.get(segment)
        else:
            return None
    return value


def _type_at(schema: type, segments: list[str | int]) -> inspect.Type:
    """The type that ``schema`` declares at a path, past unions with None, lists and dicts."""
    current = _bare(inspect.type_info(schema))
    for segment in segments:
        if isinstance(current, inspect.StructType) and isinstance(segment, str):
            fields = {field.encode_name: field.type for field in current.fields}
            current = fields.get(segment, inspect.AnyType())
        elif isinstance(current, inspect.ListType | inspect.DictType):
            current = current.item_type if isinstance(current, inspect.ListType) else current.value_type
        current = _bare(current)
    return current


def _extra_at(schema: type, segments: list[str | int]) -> dict[str, Any]:
    """The ``Meta(extra=...)`` declared on the field at a path: what an error there may add for the client."""
    *parents, last = segments or [""]
    parent = _type_at(schema, parents)
    if not isinstance(parent, inspect.StructType):
        return {}
    declared = {field.encode_name: field.type for field in parent.fields}.get(last)
    return (declared.extra or {}) if isinstance(declared, inspect.Metadata) else {}


def _bare(kind: inspect.Type) -> inspect.Type:
    while True:
        if isinstance(kind, inspect.Metadata):
            kind = kind.type
        elif isinstance(kind, inspect.UnionType):
            others = [member for member in kind.types if not isinstance(member, inspect.NoneType)]
            if len(others) != 1:
                return kind
            kind = others[0]
        else:
            return kind


def _struct_at(schema: type, segments: list[str | int]) -> Any:
    kind = _type_at(schema, segments)
    return kind.cls if isinstance(kind, inspect.StructType) else None


def _choices_at(schema: type, segments: list[str | int]) -> tuple[Any, ...]:
    kind = _type_at(schema, segments)
    return tuple(kind.values) if isinstance(kind, inspect.LiteralType) else ()
