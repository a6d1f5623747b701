"""Inbound attachments kept for good: which attachments of a message to fetch, and what their fetch became.

A message appears at once with Meta's attachment URLs in its ``content``; the media actor then fetches each
into the media store and records, aligned with ``content.message.attachments``, ``metadata.media[i]``:
``{"type", "url", "content_type", "size", "sha256"}`` (``url`` the service's own, signed), or ``{"type",
"error"}`` when the source is gone or too large after retries. Instagram story mentions are kept as links only
(``{"type": "story_mention", "stored": false}``): Meta forbids storing them. The update is a
``message.updated`` event for integrators.

Fetching happens outside any transaction; only the recording takes the row's lock, so a slow source never
holds a database connection. Safe to run twice: a settled attachment is never fetched again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airy_actors.conversations import save_metadata
from airy_actors.db import is_postgres, write_transaction
from airy_actors.media.errors import MediaGone, MediaRejected, MediaTooLarge, MediaUnavailable
from airy_actors.media.store import StoredMedia
from airy_actors.models import Message
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

# Kinds whose payload URL is a file we keep: Messenger's, and Instagram's shares, reels and posts.
STORED_KINDS = frozenset({"image", "video", "audio", "file", "share", "ig_reel", "reel", "ig_post"})
LINK_ONLY_KINDS = frozenset({"story_mention"})  # Meta forbids storing them
_WEB = ("https://", "http://")
START_GRACE_MS = 60_000  # a message's media not taken up by an actor this long after ingestion are swept
LEASE_MARGIN_MS = 30_000  # beyond a fetch's deadline, before a fetch under way is presumed dead and swept


@dataclass(frozen=True)
class Attachment:
    """One attachment of a message that the media actor settles."""

    index: int
    kind: str
    url: str | None  # None for the kinds kept as links only


def attachments_to_settle(content: dict[str, Any], media: list[Any] | None) -> list[Attachment]:
    """The attachments of a stored message's ``content`` that ``metadata.media`` does not settle yet."""
    inner = content.get("message") if isinstance(content, dict) else None
    items = inner.get("attachments") if isinstance(inner, dict) else None
    if not isinstance(items, list):
        return []
    settled = media or []
    found = []
    for index, item in enumerate(items):
        if index < len(settled) and isinstance(settled[index], dict) and settled[index]:
            continue
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type") or "")
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        url = payload.get("url")
        if kind in STORED_KINDS and kind not in LINK_ONLY_KINDS and isinstance(url, str) and url.startswith(_WEB):
            found.append(Attachment(index, kind, url))
        else:  # a story mention, a location, a template: nothing to keep but what the content says
            found.append(Attachment(index, kind, None))
    return found


def has_media(content: dict[str, Any]) -> bool:
    """Whether a message's ``content`` has attachments for the media actor."""
    return bool(attachments_of(content))


def mark_pending(message_ids: list[str]) -> None:
    """Notes, inside the ingestion's transaction, that these messages' attachments are to be kept."""
    if message_ids:
        Message.update(media_due_at=now_ms() + START_GRACE_MS).where(Message.id.in_(message_ids)).execute()


def stale(limit: int = 200) -> list[str]:
    """Messages whose attachments no actor settled in time (a lost enqueue, a crash): to enqueue again."""
    now = now_ms()
    ids = [
        row.id
        for row in Message.select(Message.id)
        .where(Message.media_due_at.is_null(False) & (Message.media_due_at < now))
        .limit(limit)
    ]
    if ids:
        Message.update(media_due_at=now + START_GRACE_MS).where(Message.id.in_(ids)).execute()
    return ids


def settle_message_media(
    message_id: str,
    fetch: Callable[[Attachment], StoredMedia],
    url_of: Callable[[str], str],
    *,
    last_attempt: bool,
    fetch_deadline_ms: int,
) -> int:
    """Fetches a message's unsettled attachments and records what each became.

    Parameters:
      message_id: the message.
      fetch: stores one attachment's file (``fetch_to_store`` with the process's client and store).
      url_of: the service's signed URL of a stored key.
      last_attempt: record a source that is down for now as an error rather than leave it for a retry.
      fetch_deadline_ms: how long one fetch may take: the message is leased that long (and a margin) before each
        fetch, so that the sweeper brings back a fetch whose worker died, and only then.

    Returns:
      How many attachments were settled.

    Raises:
      MediaUnavailable: a source or the store is down for now and this is not the last attempt; what was
        settled before it is recorded.
    """
    message = Message.get_or_none(Message.id == message_id)
    if message is None:
        return 0
    pending = attachments_to_settle(message.content, message.metadata.get("media"))
    if not pending:
        if message.media_due_at is not None:
            Message.update(media_due_at=None).where(Message.id == message_id).execute()
        return 0
    settled: dict[int, dict[str, Any]] = {}
    retry: MediaUnavailable | None = None
    for attachment in pending:
        if attachment.url is not None:
            _lease(message_id, fetch_deadline_ms + LEASE_MARGIN_MS)
        try:
            settled[attachment.index] = _settle(attachment, fetch, url_of)
        except MediaUnavailable as error:
            if not last_attempt:
                retry = error
                continue
            settled[attachment.index] = {"type": attachment.kind, "error": f"the file could not be fetched: {error}"}
    if settled:
        _record(message_id, settled)
    if retry is not None:
        raise retry
    return len(settled)


def _lease(message_id: str, lease_ms: int) -> None:
    Message.update(media_due_at=now_ms() + lease_ms).where(
        (Message.id == message_id) & Message.media_due_at.is_null(False)
    ).execute()


def _settle(attachment: Attachment, fetch: Callable[[Attachment], StoredMedia], url_of: Callable[[str], str]) -> dict:
    if attachment.url is None:
        return {"type": attachment.kind, "stored": False}
    try:
        stored = fetch(attachment)
    except MediaGone:
        return {"type": attachment.kind, "error": "the source no longer has the file (its URL expired)"}
    except MediaTooLarge as error:
        return {"type": attachment.kind, "error": f"the file is too large: {error.message}"}
    except MediaRejected as error:
        return {"type": attachment.kind, "error": f"the file was refused: {error.message}"}
    return {
        "type": attachment.kind,
        "url": url_of(stored.key),
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
    }


def _record(message_id: str, settled: dict[int, dict[str, Any]]) -> None:
    with write_transaction():
        query = Message.select().where(Message.id == message_id)
        message = (query.for_update() if is_postgres() else query).get_or_none()
        if message is None:
            return
        count = len(attachments_of(message.content))
        media = list(message.metadata.get("media") or [])
        media += [{}] * (count - len(media))
        for index, entry in settled.items():
            if index < count and not media[index]:
                media[index] = entry
        due_at = None if all(media) else message.media_due_at
        save_metadata(message, {**message.metadata, "media": media}, media_due_at=due_at)
    logger.info("message media settled", extra={"message_id": message_id, "attachments": len(settled)})


def attachments_of(content: dict[str, Any]) -> list[Any]:
    """``content.message.attachments``, or an empty list."""
    inner = content.get("message") if isinstance(content, dict) else None
    items = inner.get("attachments") if isinstance(inner, dict) else None
    return items if isinstance(items, list) else []
