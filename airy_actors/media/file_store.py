"""A media store in a folder of the local disk (``AIRY_MEDIA_STORE=file:.airy/media``, the default).

Layout: ``<root>/<first two hex digits>/<key>`` holds the bytes and ``<key>.type`` beside it the content type.
A file arrives as a temporary ``.incoming-*`` file in ``<root>`` (the same file system), is flushed to the disk,
then renamed into place, so a reader sees a whole file or none. The content type lands first, by a hard link
that fails if one is there already, so the first content type given for some bytes is the one they keep.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from airy_actors.media.errors import MediaNotFound
from airy_actors.media.staging import STAGING_PREFIX, staged
from airy_actors.media.store import (
    CHUNK_BYTES,
    DEFAULT_CONTENT_TYPE,
    OpenedMedia,
    StoredMedia,
    byte_range,
    require_media_key,
)

CONTENT_TYPE_SUFFIX = ".type"


class FileStore:
    """A :class:`~airy_actors.media.store.MediaStore` in a folder.

    Parameters:
      root: the folder; made, with its parents, if missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int) -> StoredMedia:
        """Stores the bytes of ``chunks``; see :meth:`MediaStore.put <airy_actors.media.store.MediaStore.put>`."""
        with staged(chunks, directory=self.root, max_bytes=max_bytes, fsync=True) as incoming:
            key = incoming.sha256
            target = self._path(key)
            if target.exists():
                return StoredMedia(key, incoming.size, incoming.sha256, self._content_type(key))
            target.parent.mkdir(exist_ok=True)
            kept_type = self._keep_content_type(key, content_type)
            os.replace(incoming.path, target)
            _fsync_directory(target.parent)
        return StoredMedia(key, incoming.size, incoming.sha256, kept_type)

    def open(self, key: str, start: int | None = None, end: int | None = None) -> OpenedMedia:
        """Opens a stored file; see :meth:`MediaStore.open <airy_actors.media.store.MediaStore.open>`."""
        path = self._path(require_media_key(key))
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise MediaNotFound(f"no media {key!r}") from None
        first, stop = byte_range(start, end, size)
        return OpenedMedia(_read(path, first, stop), size, self._content_type(key))

    def exists(self, key: str) -> bool:
        """Tells whether a file is stored under ``key``."""
        return self._path(require_media_key(key)).exists()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _type_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{CONTENT_TYPE_SUFFIX}"

    def _content_type(self, key: str) -> str:
        try:
            return self._type_path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return DEFAULT_CONTENT_TYPE  # a folder filled by hand: the bytes are still served

    def _keep_content_type(self, key: str, content_type: str) -> str:
        """Writes the content type beside the key unless one is there; returns the one kept."""
        descriptor, name = tempfile.mkstemp(dir=self.root, prefix=STAGING_PREFIX)
        try:
            with open(descriptor, "w", encoding="utf-8") as file:
                file.write(content_type)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(name, self._type_path(key))
            except FileExistsError:
                return self._content_type(key)
            return content_type
        finally:
            os.unlink(name)


def _read(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as file:
        file.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = file.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
