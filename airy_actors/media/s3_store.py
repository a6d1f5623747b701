"""A media store in any S3-compatible object store (``AIRY_MEDIA_STORE=s3://bucket/prefix``).

Objects are named ``<prefix>/<key>`` and carry their content type as the object's ``Content-Type``. The key is
the hash of the bytes, unknown until the last byte is in, so a put first lands the bytes in a temporary file on
the local disk (memory stays at one chunk), then asks whether the object exists (identical bytes are sent once)
and only then uploads the file: in one request up to :data:`MULTIPART_THRESHOLD_BYTES`, in parts above, which
never hold more than a few parts in memory. No partial or staging object is ever left in the bucket.

Every failure to reach the store, or refusal by it, is a :class:`MediaUnavailable`: the caller retries.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from botocore.response import StreamingBody

from airy_actors.media.errors import MediaNotFound, MediaUnavailable, RangeNotSatisfiable
from airy_actors.media.staging import staged
from airy_actors.media.store import (
    CHUNK_BYTES,
    DEFAULT_CONTENT_TYPE,
    OpenedMedia,
    StoredMedia,
    byte_range,
    require_media_key,
)

MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
UPLOAD_THREADS = 4

_MISSING = {"404", "NoSuchKey", "NotFound"}
_CONTENT_RANGE = re.compile(r"bytes \d+-\d+/(\d+)")


class S3Store:
    """A :class:`~airy_actors.media.store.MediaStore` in an S3 bucket.

    Parameters:
      client: a boto3 S3 client (thread-safe; one per process is enough).
      bucket: the bucket's name.
      prefix: the folder inside the bucket ("" for the bucket's root); slashes at either end are dropped.
      staging_directory: where files wait on the local disk before the upload (default: the system's temp
        folder, ``TMPDIR``); a disk rather than a tmpfs, or the waiting files take memory after all.
    """

    def __init__(
        self, client: BaseClient, bucket: str, prefix: str = "", *, staging_directory: Path | None = None
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.staging_directory = staging_directory or Path(tempfile.gettempdir())
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD_BYTES,
            multipart_chunksize=PART_BYTES,
            max_concurrency=UPLOAD_THREADS,
        )

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def put(self, chunks: Iterable[bytes], *, content_type: str, max_bytes: int) -> StoredMedia:
        """Stores the bytes of ``chunks``; see :meth:`MediaStore.put <airy_actors.media.store.MediaStore.put>`."""
        with staged(chunks, directory=self.staging_directory, max_bytes=max_bytes) as incoming:
            key = incoming.sha256
            existing = self._head(key)
            if existing is not None:
                return StoredMedia(key, incoming.size, incoming.sha256, _content_type(existing))
            try:
                self.client.upload_file(
                    str(incoming.path),
                    self.bucket,
                    self._name(key),
                    ExtraArgs={"ContentType": content_type},
                    Config=self.transfer,
                )
            except (BotoCoreError, ClientError, S3UploadFailedError) as error:
                raise _unavailable(error) from error
        return StoredMedia(key, incoming.size, incoming.sha256, content_type)

    def open(self, key: str, start: int | None = None, end: int | None = None) -> OpenedMedia:
        """Opens a stored file; see :meth:`MediaStore.open <airy_actors.media.store.MediaStore.open>`."""
        require_media_key(key)
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key)}
        ranged = start is not None or end is not None
        if ranged:
            header = _range_header(start, end)
            if header is None:
                raise self._unsatisfiable(key, start, end)
            arguments["Range"] = header
        try:
            answer = self.client.get_object(**arguments)
        except ClientError as error:
            if _code(error) in _MISSING:
                raise MediaNotFound(f"no media {key!r}") from None
            if _code(error) == "InvalidRange":
                raise self._unsatisfiable(key, start, end) from None
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        body, content_type = answer["Body"], _content_type(answer)
        if not ranged:
            return OpenedMedia(_read(body), answer["ContentLength"], content_type)
        if "ContentRange" in answer:
            return OpenedMedia(_read(body), _total_size(answer["ContentRange"]), content_type)
        # The store ignored the Range and sends the whole object (some do, for an empty one): cut it here.
        size = answer["ContentLength"]
        try:
            first, stop = byte_range(start, end, size)
        except RangeNotSatisfiable:
            body.close()
            raise
        return OpenedMedia(_slice(_read(body), first, stop), size, content_type)

    def exists(self, key: str) -> bool:
        """Tells whether a file is stored under ``key``."""
        return self._head(require_media_key(key)) is not None

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def _unsatisfiable(self, key: str, start: int | None, end: int | None) -> Exception:
        head = self._head(key)
        if head is None:
            return MediaNotFound(f"no media {key!r}")
        size = head["ContentLength"]
        return RangeNotSatisfiable(f"the range {start}-{end} lies outside the media's {size} bytes", size=size)


def _range_header(start: int | None, end: int | None) -> str | None:
    """The HTTP ``Range`` of a slice, or None for a slice that no range can express (nor satisfy)."""
    if start is not None and start < 0:
        return f"bytes={start}" if end is None else None
    first = start or 0
    if end is None:
        return f"bytes={first}-"
    return f"bytes={first}-{end - 1}" if end > first else None


def _read(body: StreamingBody) -> Generator[bytes, None, None]:
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    except BotoCoreError as error:
        raise _unavailable(error) from error
    finally:
        body.close()


def _slice(chunks: Generator[bytes, None, None], start: int, end: int) -> Iterator[bytes]:
    position = 0
    try:
        for chunk in chunks:
            wanted = chunk[max(start - position, 0) : max(end - position, 0)]
            position += len(chunk)
            if wanted:
                yield wanted
            if position >= end:
                return
    finally:
        chunks.close()


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _content_type(answer: dict[str, Any]) -> str:
    return answer.get("ContentType") or DEFAULT_CONTENT_TYPE


def _total_size(content_range: str) -> int:
    match = _CONTENT_RANGE.fullmatch(content_range)
    if match is None:
        raise MediaUnavailable(f"the media store answered an unreadable Content-Range {content_range!r}")
    return int(match.group(1))


def _unavailable(error: Exception) -> MediaUnavailable:
    return MediaUnavailable(f"the media store failed: {error}")
