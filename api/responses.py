"""JSON answers that no stored value can break.

Starlette's ``JSONResponse`` refuses NaN and fails on a lone surrogate, so one such value stored by an earlier
version, or by a path that was not strict enough, would make every list that meets it answer 500. The API's
answers are written with orjson, which is faster and writes NaN and infinities as ``null``; a lone surrogate,
the one thing orjson refuses, is written as U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse

_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONResponse(StarletteJSONResponse):
    """A JSON response, written with orjson; what JSON cannot hold is written as the nearest thing it can."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except (orjson.JSONEncodeError, TypeError):
            return orjson.dumps(_repaired(content), default=str)


def _repaired(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_repaired(str(key)): _repaired(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_repaired(item) for item in value]
    return value

