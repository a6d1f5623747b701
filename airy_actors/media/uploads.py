"""Files that integrators upload to send: stored once by content, named by a ``media_id``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airy_actors.db import write_transaction
from airy_actors.errors import BadRequest
from airy_actors.media.kinds import media_type
from airy_actors.media.store import MediaStore
from airy_actors.models import Media

# What Facebook's Send API can carry as an attachment: pictures, videos, sounds and documents.
SENDABLE_PREFIXES = ("image/", "video/", "audio/", "application/")
SENDABLE_TYPES = frozenset({"text/plain", "text/csv"})
UNSENDABLE_TYPES = frozenset({"application/x-msdownload", "application/x-sh", "application/javascript"})


class UnsupportedMediaType(BadRequest):
    """A file of a type Facebook cannot send (415)."""

    status_code = 415


def check_sendable(content_type: str) -> str:
    """The bare media type of ``content_type`` when Facebook can send such a file.

    Raises:
      UnsupportedMediaType: naming the type.
    """
    bare = media_type(content_type)
    if "/" not in bare or bare in UNSENDABLE_TYPES:
        raise UnsupportedMediaType(f"Content-Type {bare or 'missing'} is not a type Facebook can send")
    if bare not in SENDABLE_TYPES and not bare.startswith(SENDABLE_PREFIXES):
        raise UnsupportedMediaType(f"Content-Type {bare} is not a type Facebook can send")
    return bare


def upload(chunks: Iterable[bytes], *, content_type: str, store: MediaStore, max_bytes: int) -> Media:
    """Stores an uploaded file and names it.

    Raises:
      UnsupportedMediaType: the type cannot be sent.
      MediaTooLarge: past ``max_bytes``; nothing is kept.
    """
    bare = check_sendable(content_type)
    stored = store.put(chunks, content_type=bare, max_bytes=max_bytes)
    with write_transaction():
        return Media.create(key=stored.key, content_type=stored.content_type, size=stored.size)


def get_media(media_id: str) -> Media:
    """Raises BadRequest (an unknown media_id in a send is bad input, not a missing resource)."""
    media = Media.get_or_none(Media.id == media_id)
    if media is None:
        raise BadRequest(f"media_id {media_id} is not a known upload")
    return media


def media_json(media: Media, url: str) -> dict[str, Any]:
    """An upload as ``/media.upload`` answers it."""
    return {"media_id": media.id, "url": url, "content_type": media.content_type, "size": media.size}
