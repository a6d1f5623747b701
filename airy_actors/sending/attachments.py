"""Uploaded files in sends: ``{"attachment": {"type", "payload": {"media_id"}}}`` turned into what Meta takes.

For a Messenger page the file is uploaded once per page with the Attachment Upload API (reusable), and its
``attachment_id`` kept and sent; for Instagram the service's own signed URL of the file is sent, which Meta
fetches (so ``AIRY_PUBLIC_URL`` must be reachable from the internet). The stored message keeps the content the
integrator sent.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from airy_actors.db import release_connection, write_transaction
from airy_actors.errors import BadRequest
from airy_actors.graph import ErrorKind, GraphClient, GraphError
from airy_actors.media.configured import get_media_store, signed_url
from airy_actors.models import Channel, Media, PageAttachment

logger = logging.getLogger(__name__)

SPOOL_IN_MEMORY_BYTES = 1024 * 1024  # a larger file waits on disk while it is uploaded
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
    page_id = channel.source_channel_id
    known = PageAttachment.get_or_none((PageAttachment.key == media.key) & (PageAttachment.page_id == page_id))
    if known is not None:
        return known.attachment_id
    release_connection()  # the upload may take a while: no connection held meanwhile
    opened = get_media_store().open(media.key)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as file:
        for chunk in opened.chunks:
            file.write(chunk)
        file.seek(0)
        attachment_id = graph.upload_attachment(
            channel.page_token or "", kind=kind, content_type=media.content_type, file=file
        )
    with write_transaction():
        row = {"key": media.key, "page_id": page_id, "attachment_id": attachment_id}
        PageAttachment.insert(row).on_conflict_ignore().execute()
    logger.info("file uploaded to a page", extra={"media_id": media.id, "page_id": page_id})
    return attachment_id
