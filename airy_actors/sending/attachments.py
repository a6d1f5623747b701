"""Uploaded files in sends: ``{"attachment": {"type", "payload": {"media_id"}}}`` turned into what Meta takes.

For a Messenger page the file is uploaded once per page with the Attachment Upload API (reusable), and its
``attachment_id`` kept and sent; for Instagram the service's own signed URL of the file is sent, which Meta
fetches (so ``AIRY_PUBLIC_URL`` must be reachable from the internet). The stored message keeps the content the
integrator sent.
"""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any

import peewee

from airy_actors.db import release_connection, write_transaction
from airy_actors.errors import BadRequest
from airy_actors.graph import ErrorKind, GraphClient, GraphError
from airy_actors.media.configured import get_media_store, signed_url
from airy_actors.models import Channel, Media, PageAttachment
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

SPOOL_IN_MEMORY_BYTES = 1024 * 1024  # a larger file waits on disk while it is uploaded
UPLOAD_WAIT_MS = 10_000  # how long a send waits for another send's upload of the same file to the same page
UPLOAD_POLL_S = 0.1
UPLOAD_LEASE_MS = 5 * 60_000  # an upload still unfinished this long is presumed dead, and taken over
INSTAGRAM = "instagram"


def uploaded_media_id(content: dict[str, Any]) -> str | None:
    """The ``media_id`` a Send API ``message`` refers to, if it sends an uploaded file."""
    attachment = content.get("attachment") if isinstance(content, dict) else None
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    media_id = payload.get("media_id") if isinstance(payload, dict) else None
    return media_id if isinstance(media_id, str) else None


def check_media(content: dict[str, Any]) -> None:
    """Refuses a send whose ``media_id`` names no upload (at acceptance, before anything is stored).

    Raises:
      BadRequest: naming the media_id.
    """
    media_id = uploaded_media_id(content)
    if media_id is not None and not Media.select().where(Media.id == media_id).exists():
        raise BadRequest(f"message.attachment.payload.media_id {media_id} is not a known upload")


def outgoing_content(content: dict[str, Any], channel: Channel, graph: GraphClient) -> dict[str, Any]:
    """``content`` as Meta takes it: an uploaded file's ``media_id`` replaced by an attachment id or a URL.

    Raises:
      GraphError: the upload failed (classified like every Graph call); permanent when the file is gone.
    """
    media_id = uploaded_media_id(content)
    if media_id is None:
        return content
    media = Media.get_or_none(Media.id == media_id)
    if media is None:
        raise GraphError(f"media_id {media_id} is no longer stored", kind=ErrorKind.PERMANENT, http_status=None)
    attachment = content["attachment"]
    if channel.source == INSTAGRAM:
        payload: dict[str, Any] = {"url": signed_url(media.key)}
    else:
        payload = {"attachment_id": _attachment_id(media, channel, str(attachment.get("type") or "file"), graph)}
    return {**content, "attachment": {**attachment, "payload": payload}}


def _attachment_id(media: Media, channel: Channel, kind: str, graph: GraphClient) -> str:
    """The page's attachment id of a file: uploaded by the first send that needs it, awaited by the others."""
    page_id = channel.source_channel_id
    deadline = time.monotonic() + UPLOAD_WAIT_MS / 1000
    while True:
        known = _known(media.key, page_id)
        if known is not None and known.attachment_id:
            return known.attachment_id
        if _claim_upload(media.key, page_id, known):
            break
        if time.monotonic() > deadline:
            # Another send is still uploading it: try again shortly, nothing was sent (hence an HTTP status).
            raise GraphError(
                "the file is being uploaded to this page by another send",
                kind=ErrorKind.THROTTLED,
                http_status=409,
                retry_after_ms=UPLOAD_WAIT_MS,
            )
        release_connection()
        time.sleep(UPLOAD_POLL_S)
    try:
        attachment_id = _upload(media, channel, kind, graph)
    except BaseException:
        with write_transaction():  # let the next send try
            _row(media.key, page_id).where(PageAttachment.attachment_id == "").execute()
        raise
    with write_transaction():
        PageAttachment.update(attachment_id=attachment_id).where(
            (PageAttachment.key == media.key) & (PageAttachment.page_id == page_id)
        ).execute()
    logger.info("file uploaded to a page", extra={"media_id": media.id, "page_id": page_id})
    return attachment_id


def _known(key: str, page_id: str) -> PageAttachment | None:
    return PageAttachment.get_or_none((PageAttachment.key == key) & (PageAttachment.page_id == page_id))


def _row(key: str, page_id: str) -> peewee.ModelDelete:
    return PageAttachment.delete().where((PageAttachment.key == key) & (PageAttachment.page_id == page_id))


def _claim_upload(key: str, page_id: str, known: PageAttachment | None) -> bool:
    """Takes the upload of a file to a page: a row without attachment id, or one whose uploader is presumed dead."""
    now = now_ms()
    with write_transaction():
        if known is None:
            row = {"key": key, "page_id": page_id, "attachment_id": "", "created_at": now}
            return PageAttachment.insert(row).on_conflict_ignore().as_rowcount().execute() == 1
        if now - known.created_at < UPLOAD_LEASE_MS:
            return False
        taken = (
            PageAttachment.update(created_at=now)
            .where(
                (PageAttachment.key == key)
                & (PageAttachment.page_id == page_id)
                & (PageAttachment.created_at == known.created_at)
                & (PageAttachment.attachment_id == "")
            )
            .execute()
        )
        return taken == 1


def _upload(media: Media, channel: Channel, kind: str, graph: GraphClient) -> str:
    release_connection()  # the upload may take a while: no connection held meanwhile
    opened = get_media_store().open(media.key)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as file:
        for chunk in opened.chunks:
            file.write(chunk)
        file.seek(0)
        return graph.upload_attachment(channel.page_token or "", kind=kind, content_type=media.content_type, file=file)
