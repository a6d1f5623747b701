"""Which content types each kind of attachment may have.

A source that answers an image URL with ``text/html`` (a login page, an error page) is not sending the image;
storing that page would pass it off as the picture. The check is loose on purpose: a kind not listed here
(``file``, Instagram's ``share``, ``reel``, ...) takes anything, and so does a response that does not say what
it is (no ``Content-Type``, or ``application/octet-stream``).
"""

from __future__ import annotations

from airy_actors.media.store import DEFAULT_CONTENT_TYPE

ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image/",),
    "video": ("video/",),
    # Messenger's voice clips are MP4 files, served as video/mp4.
    "audio": ("audio/", "video/", "application/ogg"),
}


def media_type(content_type: str) -> str:
    """Returns the bare, lowercase media type of a ``Content-Type`` (``image/png; x=y`` → ``image/png``)."""
    return content_type.split(";", 1)[0].strip().lower()


def content_type_allowed(kind: str | None, content_type: str) -> bool:
    """Tells whether an attachment of ``kind`` may be stored with ``content_type``.

    Parameters:
      kind: the attachment's type in the payload (``image``, ``video``, ``audio``, ``file``, ...); None: any.
      content_type: the ``Content-Type`` the source answered with.

    Returns:
      False only when the kind is listed in :data:`ACCEPTED_TYPES` and the content type is another.
    """
    accepted = ACCEPTED_TYPES.get(kind or "")
    bare = media_type(content_type)
    if accepted is None or bare in ("", DEFAULT_CONTENT_TYPE):
        return True
    return bare.startswith(accepted)
