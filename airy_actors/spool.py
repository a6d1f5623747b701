"""The webhook's local spool: signed requests kept on disk while the database is down (SPEC §7).

Facebook disables a webhook that keeps failing, so while PostgreSQL does not answer, ``POST /facebook`` appends
the raw bodies here, answers 200, and a drain moves them into the database once it answers again.

On disk, under one directory shared by every web process of the host::

    <stamp>-<pid>-<n>.seg   a segment: the magic ``AIRYSPL1``, then records appended by one process
    <stamp>-<pid>-<n>.off   how far the drain has stored that segment: offset (8 bytes) and its CRC32 (4 bytes)
    append.lock, drain.lock flock targets; their content means nothing

A record is the body's length (4 bytes, big-endian), the CRC32 of those 4 bytes and the body (4 bytes), then
the body. A record cut short by a crash, or whose CRC does not match, ends what is read of its segment: a torn
tail is skipped, never misread as a body.

Concurrency:

- Each process appends to a segment of its own, so that records of two processes never interleave. It holds an
  exclusive ``flock`` on it for as long as it may write to it (until it rotates, closes or dies, when the kernel
  releases the lock), and never reopens it afterwards. A segment is created under a temporary name, locked,
  given its header and only then renamed into place: a drainer never sees a segment that is not locked by its
  live writer, unless that writer is done with it.
- The drain takes ``drain.lock`` without waiting (one drainer at a time; another returns at once). It tries each
  segment's lock: when it gets it, the writer is done (closed or dead), so the segment is drained to its end
  (a torn tail skipped) and deleted. When it does not, the writer is alive: complete records are drained,
  progress is kept in the offset file, and the rest waits for the next drain. Draining a live segment, rather
  than waiting for it to rotate, empties the spool as soon as the database answers, without depending on
  traffic to rotate segments.
- ``append.lock`` is held across processes while an append checks the spool's size and writes (not while it
  fsyncs), so that ``max_bytes`` holds for the whole directory, not for each process.

Order is kept per writing process (segment by segment, record by record); Facebook does not order requests
anyway (SPEC §3). A batch replayed after a crash of the drain is made harmless by the digest dedupe of
:func:`airy_actors.ingestion.store_webhook_requests`.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from airy_actors.errors import Unavailable

logger = logging.getLogger(__name__)

MAGIC = b"AIRYSPL1"
SEGMENT_SUFFIX = ".seg"
OFFSET_SUFFIX = ".off"
NEW_SUFFIX = ".new"
APPEND_LOCK = "append.lock"
DRAIN_LOCK = "drain.lock"
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_DRAIN_BATCH = 64

_LENGTH = struct.Struct(">I")
_RECORD_HEADER = struct.Struct(">II")  # body length, CRC32 of the length's bytes and the body
_OFFSET = struct.Struct(">Q")  # the drained offset; the offset file holds it, then its CRC32

# Segment names are unique within a process (the counter) and sort in creation order within it (the stamp
# never goes back, even if the wall clock does).
_counter = itertools.count()
_names_lock = threading.Lock()
_last_stamp = 0


class SpoolFull(Unavailable):
    """Appending would take the spool past its bound: the webhook answers 503 and Facebook retries later."""


class Spool:
    """An append-only log of raw webhook request bodies, in segment files under ``directory``.

    Appends are durable when :meth:`append` returns; :meth:`drain` moves what was appended into the database,
    in order. Several processes may append to, and drain, the same directory. One instance may be used from
    several threads.

    Parameters:
      directory: where the segments live (``AIRY_DATA_DIR/spool``); created on the first append.
      max_bytes: the most bytes spooled and not yet drained, across every process (``AIRY_SPOOL_MAX_BYTES``).
      segment_bytes: past this size, a process starts a new segment, so that drained segments can be deleted
        while the process lives on.
    """

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._segment: _Segment | None = None
        self._lock = threading.Lock()

    def append(self, bodies: list[bytes]) -> None:
        """Appends ``bodies``, all of them or none, and makes them durable (fsync) before returning.

        Parameters:
          bodies: raw request bodies, as received.

        Raises:
          SpoolFull: the bodies would take the spool past ``max_bytes``; nothing was written.
          Unavailable: the disk refused the write or the fsync (the segment is then closed and a new one
            started at the next append). Bodies of a failed fsync may still be drained later: the digest
            dedupe keeps a redelivery from storing them twice.
        """
        if not bodies:
            return
        payload = b"".join(_record(body) for body in bodies)
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with _flock(self.directory / APPEND_LOCK, fcntl.LOCK_EX):
                    if self.size_bytes() + len(payload) > self.max_bytes:
                        raise SpoolFull(
                            f"the webhook spool is full (AIRY_SPOOL_MAX_BYTES={self.max_bytes}) "
                            "while the database is down"
                        )
                    segment = self._writable_segment(len(payload))
                    segment.write(payload)
                # Outside the append lock: other processes need not wait for this one's disk flush.
                segment.sync()
            except OSError as error:
                self._retire()
                raise Unavailable(f"the webhook spool could not be written: {error.strerror or error}") from error

    def drain(self, store: Callable[[list[bytes]], None], batch: int = DEFAULT_DRAIN_BATCH) -> int:
        """Moves everything spooled into the database, in order, then forgets it.

        After each call of ``store`` returns, the progress is made durable (the segment's offset file, then the
        deletion of a finished segment), so a crash of the drain replays at most the batch it was storing.
        Segments of writers that died are drained to their last complete record and deleted; a segment of a
        live writer is drained up to its last complete record, and the rest at a later drain.

        Parameters:
          store: stores a batch of bodies durably (committed) before it returns; storing a body twice must be
            harmless (:func:`airy_actors.ingestion.store_webhook_requests` dedupes by digest).
          batch: the most bodies given to one call of ``store``.

        Returns:
          How many bodies were given to ``store``; 0 at once when another drain is running (in any process).

        Raises:
          Whatever ``store`` raises (the database went down again): what was stored before stays drained.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not self.directory.is_dir():
            return 0
        with _flock(self.directory / DRAIN_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB) as held:
            if not held:
                return 0
            self._remove_leftovers()
            return sum(self._drain_segment(name, store, batch) for name in self._segment_names())

    def size_bytes(self) -> int:
        """Returns the bytes spooled and not yet drained, across every process (for /health and metrics)."""
        total = 0
        for name in self._segment_names():
            try:
                size = (self.directory / name).stat().st_size
            except FileNotFoundError:  # drained and deleted meanwhile
                continue
            total += max(0, size - _read_offset(self.directory / _offset_name(name)))
        return total

    def pending(self) -> bool:
        """Returns whether anything spooled waits to be drained."""
        return self.size_bytes() > 0

    def close(self) -> None:
        """Closes this process's segment, so that the next drain can finish and delete it."""
        with self._lock:
            self._retire()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _writable_segment(self, size: int) -> _Segment:
        segment = self._segment
        if segment is not None and (
            segment.pid != os.getpid()  # a forked child: the segment and its lock are the parent's
            or segment.tampered()
            or (segment.end > len(MAGIC) and segment.end + size > self.segment_bytes)
        ):
            self._retire()
            segment = None
        if segment is None:
            segment = self._segment = _Segment.create(self.directory)
        return segment

    def _retire(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            segment.close()

    def _segment_names(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(name for name in names if name.endswith(SEGMENT_SUFFIX))

    def _drain_segment(self, name: str, store: Callable[[list[bytes]], None], batch: int) -> int:
        path = self.directory / name
        try:
            file = open(path, "rb")
        except FileNotFoundError:
            return 0
        with file:
            finished = _try_lock(file.fileno())
            size = os.fstat(file.fileno()).st_size
            if file.read(len(MAGIC)) != MAGIC:
                logger.error("not a spool segment; left in place", extra={"segment": str(path)})
                return 0
            stored = 0
            with _Progress(self.directory / _offset_name(name)) as progress:
                end = progress.offset
                bodies: list[bytes] = []
                for body, record_end in _records(file, progress.offset, size):
                    bodies.append(body)
                    end = record_end
                    if len(bodies) == batch:
                        store(bodies)
                        stored += len(bodies)
                        progress.save(end)
                        bodies = []
                if bodies:
                    store(bodies)
                    stored += len(bodies)
                    progress.save(end)
            if finished:
                if end < size:
                    logger.warning(
                        "skipped the torn tail of a spool segment",
                        extra={"segment": str(path), "skipped_bytes": size - end},
                    )
                # The segment goes first: a crash in between leaves an offset file without its segment, which
                # the next drain removes, rather than a segment without its progress, which would be replayed.
                path.unlink()
                _fsync_directory(self.directory)
                (self.directory / _offset_name(name)).unlink(missing_ok=True)
        return stored

    def _remove_leftovers(self) -> None:
        """Removes offset files of deleted segments, and segments that a process died creating (empty)."""
        names = set(os.listdir(self.directory))
        for name in names:
            path = self.directory / name
            if name.endswith(OFFSET_SUFFIX) and name.removesuffix(OFFSET_SUFFIX) + SEGMENT_SUFFIX not in names:
                path.unlink(missing_ok=True)
            elif name.endswith(NEW_SUFFIX):
                # A creator that has not locked it yet finds it gone when it renames it, and starts another.
                with _flock(path, fcntl.LOCK_EX | fcntl.LOCK_NB, create=False) as held:
                    if held:
                        path.unlink(missing_ok=True)


class _Segment:
    """This process's open segment, locked while it is open."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        self.pid = os.getpid()
        self.end = len(MAGIC)

    @classmethod
    def create(cls, directory: Path) -> _Segment:
        while True:
            pid, number = os.getpid(), next(_counter)
            new = directory / f"{pid}-{number}{NEW_SUFFIX}"
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _write_all(fd, MAGIC, 0)
                os.fsync(fd)
                path = directory / f"{_stamp():020d}-{pid}-{number}{SEGMENT_SUFFIX}"
                os.rename(new, path)
            except FileNotFoundError:  # a drain took it for a dead process's leftover before it was locked
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    new.unlink()
                raise
            segment = cls(fd, path)
            try:
                _fsync_directory(directory)
            except BaseException:
                segment.close()
                raise
            return segment

    def tampered(self) -> bool:
        """Whether the file is no longer what this process wrote (truncated or deleted from outside)."""
        stat = os.fstat(self.fd)
        return stat.st_size != self.end or stat.st_nlink == 0

    def write(self, payload: bytes) -> None:
        try:
            _write_all(self.fd, payload, self.end)
        except OSError:
            # Take back what was written of it; should that fail too, the append fails, the segment is retired
            # and its tail is torn, which the drain skips.
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.end)
            raise
        self.end += len(payload)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class _Progress:
    """A segment's offset file: how far the drain has stored it, rewritten in place and fsync'd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = _read_offset(path)
        self._fd: int | None = None

    def save(self, offset: int) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            _fsync_directory(self.path.parent)
        packed = _OFFSET.pack(offset)
        _write_all(self._fd, packed + _LENGTH.pack(zlib.crc32(packed)), 0)
        os.fsync(self._fd)
        self.offset = offset

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _record(body: bytes) -> bytes:
    length = _LENGTH.pack(len(body))
    return _RECORD_HEADER.pack(len(body), zlib.crc32(body, zlib.crc32(length))) + body


def _records(file: BinaryIO, offset: int, size: int) -> Iterator[tuple[bytes, int]]:
    """Yields each complete, intact record from ``offset`` up to ``size``, with the offset where it ends.

    Stops at the first record that is cut short or fails its CRC.
    """
    file.seek(offset)
    while offset + _RECORD_HEADER.size <= size:
        header = file.read(_RECORD_HEADER.size)
        length, crc = _RECORD_HEADER.unpack(header)
        end = offset + _RECORD_HEADER.size + length
        if end > size:  # checked before reading: a torn length may be huge
            return
        body = file.read(length)
        if len(body) != length or zlib.crc32(body, zlib.crc32(header[: _LENGTH.size])) != crc:
            return
        yield body, end
        offset = end


def _read_offset(path: Path) -> int:
    """The drained offset kept in ``path``; the first record's when there is none or it is torn."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return len(MAGIC)
    packed, crc = data[: _OFFSET.size], data[_OFFSET.size : _OFFSET.size + _LENGTH.size]
    if len(crc) == _LENGTH.size and _LENGTH.unpack(crc)[0] == zlib.crc32(packed):
        return _OFFSET.unpack(packed)[0]
    # Replaying the segment from its start is harmless (the store dedupes), only slower.
    logger.warning("torn spool offset file; its segment is drained again from the start", extra={"path": str(path)})
    return len(MAGIC)


def _offset_name(segment_name: str) -> str:
    return segment_name.removesuffix(SEGMENT_SUFFIX) + OFFSET_SUFFIX


def _stamp() -> int:
    global _last_stamp
    with _names_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _fsync_directory(directory: Path) -> None:
    """Makes the creation, renaming or deletion of a file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    """Takes an exclusive flock on ``fd`` if no one holds it; returns whether it did."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _flock(path: Path, operation: int, *, create: bool = True) -> Iterator[bool]:
    """Holds an flock on ``path`` for the block; yields whether it was granted (always, without LOCK_NB).

    A file that does not exist (and is not to be created) is not granted.
    """
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
