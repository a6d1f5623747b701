"""Media that outlives Facebook's URLs (SPEC section 9): the store, its signed URLs, and fetching into it.

Plain synchronous code; the actor that fetches attachments and the ``/media`` endpoints are shells over it.
"""

from airy_actors.media.errors import (
    MediaGone,
    MediaNotFound,
    MediaRejected,
    MediaTooLarge,
    MediaUnavailable,
    RangeNotSatisfiable,
)
from airy_actors.media.fetching import MAX_REDIRECTS, fetch_to_store
from airy_actors.media.file_store import FileStore
from airy_actors.media.kinds import content_type_allowed
from airy_actors.media.location import DEFAULT_MEDIA_STORE, open_media_store
from airy_actors.media.s3_store import S3Store
from airy_actors.media.signing import media_url, verify
from airy_actors.media.store import MediaStore, OpenedMedia, StoredMedia, byte_range, is_media_key

__all__ = [
    "DEFAULT_MEDIA_STORE",
    "MAX_REDIRECTS",
    "FileStore",
    "MediaGone",
    "MediaNotFound",
    "MediaRejected",
    "MediaStore",
    "MediaTooLarge",
    "MediaUnavailable",
    "OpenedMedia",
    "RangeNotSatisfiable",
    "S3Store",
    "StoredMedia",
    "byte_range",
    "content_type_allowed",
    "fetch_to_store",
    "is_media_key",
    "media_url",
    "open_media_store",
    "verify",
]
