"""What the spool's crash tests run in a process of their own, and the store they drain into.

Run as ``python -m tests.spool.spool_child <command> …`` from the checkout's root:

- ``append-loop DIR TAG BODY_BYTES``: appends bodies 0, 1, 2, … tagged TAG, one to three at a time, printing
  each id once its append has returned, until it is killed.
- ``append-tagged DIR TAG COUNT``: appends COUNT bodies tagged TAG, one to four at a time, then prints ``done``.
- ``append-on-demand DIR TAG``: for each line ``N`` read from stdin, appends N more bodies and prints ``ok``;
  closes its segment and exits at end of input.
- ``drain-and-die DIR DB BATCH KILL_AFTER``: drains into the SQLite store DB, and SIGKILLs itself once KILL_AFTER
  batches have been stored (committed).
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from airy_actors.spool import Spool

MAX_BYTES = 1 << 30
ROOT = Path(__file__).resolve().parents[2]


def start(*args: str, **popen: Any) -> subprocess.Popen[str]:
    """Starts this module in a process of its own with ``args``; its stdout is a pipe of text lines."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.spool.spool_child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )


def make_body(tag: str, number: int, size: int = 200) -> bytes:
    """A body that says who wrote it and carries its own checksum, so that a garbled one is caught."""
    prefix = f"{tag}:{number}:".encode()
    pad = hashlib.shake_256(prefix).digest(max(0, size // 2))
    content = prefix + pad.hex().encode()
    return content + b":" + hashlib.sha256(content).hexdigest().encode()


def read_body(body: bytes) -> tuple[str, int]:
    """The tag and number of a body from :func:`make_body`; raises ValueError when it is garbled."""
    content, _, digest = body.rpartition(b":")
    if hashlib.sha256(content).hexdigest().encode() != digest:
        raise ValueError(f"garbled body: {body[:60]!r}…")
    tag, number, _ = content.decode().split(":", 2)
    return tag, int(number)


class SqliteStore:
    """Stores bodies once by digest, as ``store_webhook_requests`` does, and logs every delivery to it."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("CREATE TABLE IF NOT EXISTS stored (digest TEXT PRIMARY KEY, body BLOB)")
        self.connection.execute("CREATE TABLE IF NOT EXISTS deliveries (n INTEGER PRIMARY KEY, digest TEXT)")

    def __call__(self, bodies: list[bytes]) -> None:
        digests = [hashlib.sha256(body).hexdigest() for body in bodies]
        self.connection.execute("BEGIN")
        self.connection.executemany("INSERT INTO deliveries (digest) VALUES (?)", [(d,) for d in digests])
        self.connection.executemany(
            "INSERT OR IGNORE INTO stored (digest, body) VALUES (?, ?)", list(zip(digests, bodies, strict=True))
        )
        self.connection.execute("COMMIT")

    def stored(self) -> dict[str, bytes]:
        return dict(self.connection.execute("SELECT digest, body FROM stored"))

    def deliveries(self) -> dict[str, int]:
        return dict(self.connection.execute("SELECT digest, COUNT(*) FROM deliveries GROUP BY digest"))


def append_loop(directory: Path, tag: str, body_bytes: int) -> None:
    spool = Spool(directory, MAX_BYTES)
    number = 0
    while True:
        count = 1 + number % 3
        spool.append([make_body(tag, number + i, body_bytes) for i in range(count)])
        for i in range(count):
            print(number + i, flush=True)
        number += count


def append_tagged(directory: Path, tag: str, count: int) -> None:
    with Spool(directory, MAX_BYTES) as spool:
        number = 0
        while number < count:
            size = min(1 + number % 4, count - number)
            spool.append([make_body(tag, number + i, 100 + 997 * ((number + i) % 7)) for i in range(size)])
            number += size
    print("done", flush=True)


def append_on_demand(directory: Path, tag: str) -> None:
    with Spool(directory, MAX_BYTES) as spool:
        number = 0
        for line in sys.stdin:
            count = int(line)
            spool.append([make_body(tag, number + i) for i in range(count)])
            number += count
            print("ok", flush=True)


def drain_and_die(directory: Path, database: Path, batch: int, kill_after: int) -> None:
    store = SqliteStore(database)
    calls = 0

    def store_then_die(bodies: list[bytes]) -> None:
        nonlocal calls
        store(bodies)
        calls += 1
        if calls == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    Spool(directory, MAX_BYTES).drain(store_then_die, batch=batch)


def main(argv: list[str]) -> None:
    command, directory, *rest = argv
    if command == "append-loop":
        append_loop(Path(directory), rest[0], int(rest[1]))
    elif command == "append-tagged":
        append_tagged(Path(directory), rest[0], int(rest[1]))
    elif command == "append-on-demand":
        append_on_demand(Path(directory), rest[0])
    elif command == "drain-and-die":
        drain_and_die(Path(directory), Path(rest[0]), int(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
