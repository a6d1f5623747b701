"""Cursor pagination, newest first, as SPEC section 2 describes it.

A cursor names the item a page starts after (``next``) or ends before (``prev``) by its sort key, so pages
stay stable while new messages arrive. Cursors are opaque to clients: base64url of a small JSON document.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import peewee

from airy_actors import strict_json
from airy_actors.errors import BadRequest

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


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


class _CursorDocument(msgspec.Struct, forbid_unknown_fields=True):
    """What a cursor holds: the direction, and the sort key (a BIGINT) with the tiebreak (an id)."""

    d: Literal["next", "prev"]
    k: tuple[Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)], Annotated[str, msgspec.Meta(max_length=64)]]


def _decode(cursor: object) -> tuple[str, list[Any]]:
    if not isinstance(cursor, str):
        raise BadRequest("cursor must be a string")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        document = strict_json.loads(raw, _CursorDocument)
    except (binascii.Error, ValueError, BadRequest):  # a forged cursor learns nothing of what was wrong
        raise BadRequest("cursor is not valid") from None
    return document.d, list(document.k)
