"""What a media store is: content-addressed, streamed in, read back by byte range.

A store keeps each distinct file once, under the hex SHA-256 of its bytes. The key is not secret (anyone holding
the file can compute it); what makes a media URL unguessable is its signature (:mod:`airy_actors.media.signing`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from airy_actors.media.errors import MediaNotFound, RangeNotSatisfiable

CHUNK_BYTES = 64 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredMedia:
    """One file in the store.

    Parameters:
      key: the name it is stored under: the hex SHA-256 of its bytes.
      size: its length in bytes.
      sha256: the hex SHA-256 of its bytes (the same as ``key``, named for what it is).
      content_type: the ``Content-Type`` it is served with; for a file stored before, the first one given.
    """

    key: str
    size: int
    sha256: str
    content_type: str


class OpenedMedia(NamedTuple):
    """A stored file opened for reading.

    Parameters:
      chunks: the bytes of the asked range, in chunks of at most :data:`CHUNK_BYTES`.
      size: the whole file's length in bytes (not the range's), for ``Content-Range``.
      content_type: the ``Content-Type`` it was stored with.
    """

    chunks: Iterator[bytes]
    size: int
    content_type: str


class MediaStore(Protocol):
    """Where media files are kept. Implementations are safe to share between threads."""

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int) -> StoredMedia:
        """Stores the bytes of ``chunks``, never holding them all in memory.

        Identical bytes are stored once: a second put of the same file stores nothing new.

        Parameters:
          chunks: the file's bytes, in pieces of any size.
          content_type: the ``Content-Type`` to serve it with.
          max_bytes: the most bytes accepted.

        Returns:
          The stored file.

        Raises:
          MediaTooLarge: as soon as more than ``max_bytes`` arrive; nothing is left behind.
          MediaUnavailable: the store cannot be reached for now.
        """
        ...

    def open(self, key: str, start: int | None = None, end: int | None = None) -> OpenedMedia:
        """Opens a stored file for reading, whole or the byte range ``[start, end)``, as a slice would.

        Parameters:
          key: the file's key.
          start: the first byte to read (default: 0); negative: the last ``-start`` bytes (HTTP's ``bytes=-N``),
            with no ``end``.
          end: one past the last byte to read (default, or when past the end: the file's end).

        Returns:
          The range's chunks, with the whole file's size and content type.

        Raises:
          MediaNotFound: nothing is stored under ``key``.
          RangeNotSatisfiable: a bound was given and the range is empty, starts past the end, or has a negative
            start and an end.
          MediaUnavailable: the store cannot be reached for now.
        """
        ...

    def exists(self, key: str) -> bool:
        """Tells whether a file is stored under ``key``.

        Raises:
          MediaUnavailable: the store cannot be reached for now.
        """
        ...


def is_media_key(key: str) -> bool:
    """Tells whether ``key`` has the shape of a media key (64 lowercase hex digits)."""
    return _KEY.fullmatch(key) is not None


def require_media_key(key: str) -> str:
    """Returns ``key`` if it has the shape of a media key.

    Raises:
      MediaNotFound: it has not; no such file can exist, and the key never reaches a path or an object name.
    """
    if not is_media_key(key):
        raise MediaNotFound(f"no media {key!r}")
    return key


def byte_range(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """Resolves an asked range against a file's size.

    Parameters:
      start: the first byte asked (default: 0); negative: the last ``-start`` bytes, with no ``end``.
      end: one past the last byte asked (default, or when past the end: ``size``).
      size: the file's length.

    Returns:
      ``(start, end)`` with ``0 <= start <= end <= size``: the bytes to send, and for ``Content-Range``
      ``bytes <start>-<end - 1>/<size>``; the whole file when neither bound is given.

    Raises:
      RangeNotSatisfiable: a bound was given and the range is empty, starts past the end, or has a negative
        start and an end.
    """
    if start is None and end is None:
        return 0, size
    if start is not None and start < 0:
        first, stop = max(size + start, 0), (size if end is None else 0)
    else:
        first, stop = start or 0, (size if end is None else min(end, size))
    if first >= stop:
        raise RangeNotSatisfiable(f"the range {start}-{end} lies outside the media's {size} bytes", size=size)
    return first, stop
