"""The media errors, each under the package's tree (:mod:`airy_actors.errors`) so the app maps them once::

    AiryError
    ├── BadRequest
    │   ├── MediaRejected             the source answered with something not to store (permanent)
    │   └── RangeNotSatisfiable  416  the asked byte range lies outside the stored media
    ├── NotFound
    │   ├── MediaNotFound        404  no media is stored under this key
    │   └── MediaGone                 the source answered 403, 404 or 410: its URL expired (permanent)
    ├── PayloadTooLarge
    │   └── MediaTooLarge        413  more than the allowed bytes (permanent)
    └── Unavailable
        └── MediaUnavailable     503  the source or the store failed for now: retry later

A media actor retries on :class:`MediaUnavailable` and records any other of these as the attachment's error.
"""

from __future__ import annotations

from airy_actors.errors import BadRequest, NotFound, PayloadTooLarge, Unavailable


class MediaRejected(BadRequest):
    """The source answered with something that is not to be stored (too many redirects, a refused content type,
    another client error). Retrying would not change it."""


class RangeNotSatisfiable(BadRequest):
    """The asked byte range lies outside the stored media.

    Parameters:
      size: the media's size in bytes, for the ``Content-Range: bytes */<size>`` of the 416 answer.
    """

    status_code = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class MediaNotFound(NotFound):
    """No media is stored under this key."""


class MediaGone(NotFound):
    """The source answered 403, 404 or 410: the URL expired and will not come back."""


class MediaTooLarge(PayloadTooLarge):
    """The media is larger than allowed.

    Parameters:
      max_bytes: the limit that was passed.
    """

    def __init__(self, message: str, *, max_bytes: int) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes


class MediaUnavailable(Unavailable):
    """The source or the store failed for now (a 5xx, a 429, a timeout, a lost connection, the fetch's deadline):
    the same call may succeed later."""
