"""Taking a stream of bytes in: onto a temporary file on disk, hashed and counted on the way.

The key of a file is its hash, known only once the last byte is in; both stores therefore land the bytes in a
temporary file first, with memory bounded by one chunk, and refuse them the moment they pass the limit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from airy_actors.media.errors import MediaTooLarge

STAGING_PREFIX = ".incoming-"


@dataclass(frozen=True)
class StagedFile:
    """Bytes landed in a temporary file.

    Parameters:
      path: the temporary file; removed when the staging ends unless it was moved away.
      size: its length in bytes.
      sha256: the hex SHA-256 of its bytes.
    """

    path: Path
    size: int
    sha256: str


@contextmanager
def staged(chunks: Iterable[bytes], *, directory: Path, max_bytes: int, fsync: bool = False) -> Iterator[StagedFile]:
    """Writes ``chunks`` to a new temporary file in ``directory``, and removes it on leaving the block.

    Parameters:
      chunks: the bytes, in pieces of any size.
      directory: where the temporary file is made (the store's own folder, to move it in place atomically).
      max_bytes: the most bytes accepted.
      fsync: whether to flush the file to the disk before handing it over.

    Returns:
      A context manager giving the :class:`StagedFile`.

    Raises:
      MediaTooLarge: as soon as more than ``max_bytes`` arrive; the partial file is removed and ``chunks`` is
        read no further.
    """
    descriptor, name = tempfile.mkstemp(dir=directory, prefix=STAGING_PREFIX)
    path = Path(name)
    try:
        digest = hashlib.sha256()
        size = 0
        with open(descriptor, "wb") as file:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(f"the media is larger than {max_bytes} bytes", max_bytes=max_bytes)
                digest.update(chunk)
                file.write(chunk)
            if fsync:
                file.flush()
                os.fsync(file.fileno())
        yield StagedFile(path=path, size=size, sha256=digest.hexdigest())
    finally:
        path.unlink(missing_ok=True)
