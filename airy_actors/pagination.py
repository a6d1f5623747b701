"""Cursor pagination, newest first, as SPEC section 2 describes it.

A cursor names the item a page starts after (``next``) or ends before (``prev``) by its sort key, so pages
stay stable while new messages arrive. Cursors are opaque to clients: base64url of a small JSON document.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import peewee

from airy_actors.errors import BadRequest

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_KEY_LENGTH = 255  # the longest id a cursor can name


@dataclass
class Page:
    items: list[Any]
    previous_cursor: str
    next_cursor: str
    filtered_total: int
    total: int

    def response_metadata(self) -> dict[str, Any]:
        return {
            "previous_cursor": self.previous_cursor,
            "next_cursor": self.next_cursor,
            "filtered_total": self.filtered_total,
            "total": self.total,
        }


def page_size_from(value: object) -> int:
    """Validates a requested page size: default 20, clamped to 100, at least 1.

    Raises:
      BadRequest: for a non-integer, zero or negative size.
    """
    if value is None:
        return DEFAULT_PAGE_SIZE
    if isinstance(value, float) and value.is_integer() and value > MAX_PAGE_SIZE:
        return MAX_PAGE_SIZE  # an integer too large for 64 bits, which JSON parsers read as a float: clamped
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("page_size must be an integer")
    if value <= 0:
        raise BadRequest("page_size must be positive")
    return min(value, MAX_PAGE_SIZE)


def paginate(
    query: peewee.ModelSelect,
    *,
    sort: peewee.Field,
    tiebreak: peewee.Field,
    cursor: str | None,
    page_size: int,
    total: int,
) -> Page:
    """One page of ``query``, ordered by ``sort`` then ``tiebreak``, both descending.

    Parameters:
      query: the filtered selection.
      cursor: a cursor from an earlier page, or None for the first page.
      total: the count of everything, before filters.

    Raises:
      BadRequest: when the cursor is not one this API made.
    """
    filtered_total = query.count()
    direction, key = _decode(cursor) if cursor else ("next", None)
    if key is None:
        rows = list(query.order_by(sort.desc(), tiebreak.desc()).limit(page_size + 1))
        has_previous, has_next = False, len(rows) > page_size
    elif direction == "next":
        after = (sort < key[0]) | ((sort == key[0]) & (tiebreak < key[1]))
        rows = list(query.where(after).order_by(sort.desc(), tiebreak.desc()).limit(page_size + 1))
        has_previous, has_next = True, len(rows) > page_size
    else:
        before = (sort > key[0]) | ((sort == key[0]) & (tiebreak > key[1]))
        rows = list(query.where(before).order_by(sort.asc(), tiebreak.asc()).limit(page_size + 1))
        has_previous, has_next = len(rows) > page_size, True
        rows = rows[:page_size][::-1]
    rows = rows[:page_size]
    if not rows:
        return Page([], "", "", filtered_total, total)
    first, last = rows[0], rows[-1]
    return Page(
        items=rows,
        previous_cursor=_encode("prev", first, sort, tiebreak) if has_previous else "",
        next_cursor=_encode("next", last, sort, tiebreak) if has_next else "",
        filtered_total=filtered_total,
        total=total,
    )


def _encode(direction: str, row: peewee.Model, sort: peewee.Field, tiebreak: peewee.Field) -> str:
    key = [getattr(row, sort.name), getattr(row, tiebreak.name)]
    raw = json.dumps({"d": direction, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: object) -> tuple[str, list[Any]]:
    if not isinstance(cursor, str):
        raise BadRequest("cursor must be a string")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
        direction, key = document["d"], document["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadRequest("cursor is not valid") from None
    if direction not in ("next", "prev") or not isinstance(key, list) or len(key) != 2:
        raise BadRequest("cursor is not valid")
    sort, tiebreak = key
    # The keys this API writes: an epoch-ms sort key a BIGINT holds, and an id. Anything else was forged.
    if isinstance(sort, bool) or not isinstance(sort, int) or not -(2**63) <= sort < 2**63:
        raise BadRequest("cursor is not valid")
    if not isinstance(tiebreak, str) or len(tiebreak) > MAX_KEY_LENGTH or "\x00" in tiebreak:
        raise BadRequest("cursor is not valid")
    return direction, key
