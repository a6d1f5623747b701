"""The event stream's view of the outbox: events read by position, each rendered once as Server-Sent Events.

A *position* is ``(tx, id)``: the writing transaction's id (PostgreSQL; 0 on SQLite) and the outbox id. Ids are
assigned at insert, so on PostgreSQL a transaction that inserted id 10 may commit after one that inserted 12,
and a reader of ``id > last`` would skip 10 for ever. Reading instead only the events whose transaction is below
the oldest transaction still running (``pg_snapshot_xmin``), every one of which has ended, in (tx, id) order,
nothing is skipped: a transaction that commits later has a tx at least that xmin, above every position read.
On SQLite one writer holds the lock from its first write to its commit, so ids are commit order and tx is 0.

Any tx at least the writer's own id keeps that argument, so the outbox writes the higher of its own id and its
ordering key's newest tx (``outbox._stream_order``): a transaction that took its id early, then waited on a
conversation's row lock for a younger one to commit, is ordered after that one, and each conversation's events
come in commit order, as webhook subscribers get them.

The price on PostgreSQL: a transaction that runs long anywhere on the server (the xmin is the cluster's) holds
the stream back until it ends; the stream is late then, never incomplete.

Clients see the outbox id as each event's ``id:``; a reconnecting client's ``Last-Event-ID`` is turned back into
a position by reading that event's tx (:func:`resume_position`).
"""

from __future__ import annotations

from dataclasses import dataclass

from airy_actors.db import database, execute, is_postgres
from airy_actors.errors import BadRequest
from airy_actors.stream_listeners import STREAM_WINDOW_MS
from airy_actors.timestamps import now_ms

Position = tuple[int, int]
START: Position = (0, 0)  # before every event: ids start at 1 and tx at 0
STATEMENT_TIMEOUT_MS = 5_000
MAX_EVENT_ID = 2**63 - 1

_COLUMNS = "tx, id, type, payload, timestamp"
_XMIN = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One outbox event and its Server-Sent Events frame (``id:``, ``event:``, ``data:``, blank line)."""

    position: Position
    frame: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """Events read together, in position order, with their frames joined: written to every client at once."""

    events: tuple[StreamEvent, ...]
    data: bytes

    @property
    def first(self) -> Position:
        return self.events[0].position

    @property
    def last(self) -> Position:
        return self.events[-1].position

    def __len__(self) -> int:
        return len(self.events)

    def after(self, position: Position) -> bytes:
        """The frames of the events past ``position``: all of them, some, or none."""
        if self.first > position:
            return self.data
        if self.last <= position:
            return b""
        return b"".join(event.frame for event in self.events if event.position > position)


def frame(event_id: int, event_type: str, payload_json: str, timestamp: int) -> bytes:
    """The SSE frame of an event; its data is the document POSTed to webhook subscribers, on one line.

    The payload is the stored JSON text, which ``json.dumps`` wrote without a raw line break.
    """
    data = f'{{"type":"{event_type}","payload":{payload_json},"timestamp":{timestamp}}}'
    return f"id: {event_id}\nevent: {event_type}\ndata: {data}\n\n".encode()


def parse_last_event_id(value: str | None) -> int | None:
    """The outbox id a reconnecting client last received, from its ``Last-Event-ID`` header.

    Raises:
      BadRequest: when the header is not an event id of this stream.
    """
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_EVENT_ID:
        raise BadRequest(f"Last-Event-ID: {text[:40]!r} is not an event id of this stream (a whole number)")
    return int(text)


def resume_position(event_id: int) -> Position:
    """The position after which a client that last received ``event_id`` resumes.

    An event that is unknown (pruned, or never written here) or older than the window resumes at the start of
    what the window keeps; when it keeps nothing, after the newest event (every one is older than the window).
    """
    cutoff = now_ms() - STREAM_WINDOW_MS
    found = _rows("SELECT tx, timestamp FROM outbox_event WHERE id = {p}", event_id)
    if found and found[0][1] >= cutoff:
        return (found[0][0], event_id)
    first = _rows("SELECT tx, id FROM outbox_event WHERE timestamp >= {p} ORDER BY tx, id LIMIT 1", cutoff)
    return (first[0][0], first[0][1] - 1) if first else head()


def head() -> Position:
    """The position of the newest event a reader may take now (see the module's docstring)."""
    bound = f"WHERE tx < {_XMIN} " if is_postgres() else ""
    rows = _rows(f"SELECT tx, id FROM outbox_event {bound}ORDER BY tx DESC, id DESC LIMIT 1")
    return (rows[0][0], rows[0][1]) if rows else START


def read_after(position: Position, limit: int) -> Batch | None:
    """The next events past ``position`` whose transactions have ended, oldest first; None when there are none."""
    bound = f"AND tx < {_XMIN} " if is_postgres() else ""
    rows = _rows(
        f"SELECT {_COLUMNS} FROM outbox_event WHERE (tx, id) > ({{p}}, {{p}}) {bound}ORDER BY tx, id LIMIT {{p}}",
        *position,
        limit,
    )
    return _batch(rows)


def replay(after: Position, until: Position, limit: int) -> Batch | None:
    """The events past ``after`` up to ``until`` (a position already read), oldest first, at most ``limit``."""
    rows = _rows(
        f"SELECT {_COLUMNS} FROM outbox_event WHERE (tx, id) > ({{p}}, {{p}}) AND (tx, id) <= ({{p}}, {{p}}) "
        "ORDER BY tx, id LIMIT {p}",
        *after,
        *until,
        limit,
    )
    return _batch(rows)


def _rows(sql: str, *params: object) -> list[tuple]:
    if not is_postgres():
        return execute(sql, *params).fetchall()
    # A read that cannot answer in time fails, rather than holding a thread of the web.
    with database.atomic():
        execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        return execute(sql, *params).fetchall()


def _batch(rows: list[tuple]) -> Batch | None:
    if not rows:
        return None
    events = tuple(
        StreamEvent((tx, event_id), frame(event_id, event_type, payload, timestamp))
        for tx, event_id, event_type, payload, timestamp in rows
    )
    return Batch(events, b"".join(event.frame for event in events))
