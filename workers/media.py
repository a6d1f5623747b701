"""The media actor: keeps inbound attachments in the media store before Meta's URLs expire."""

from __future__ import annotations

import logging
import threading

import dramatiq
import httpx

from airy_actors.config import get_settings
from airy_actors.media import attachments, fetch_to_store
from airy_actors.media.configured import get_media_store, signed_url
from airy_actors.media.store import StoredMedia
from workers import queues
from workers.attempts import is_last_attempt
from workers.broker import broker  # noqa: F401  (binds the actors below to the configured broker)
from workers.sweeper import register_sweep

logger = logging.getLogger(__name__)

# A source down for now is tried again over about a quarter of an hour before its attachment is recorded failed.
RETRIES = {"max_retries": 6, "min_backoff": 5_000, "max_backoff": 5 * 60_000}

_local = threading.local()


def _client() -> httpx.Client:
    # One client a thread: at its deadline a fetch shuts its connection down, which must not hit another fetch.
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = httpx.Client(headers={"User-Agent": "airy-actors-media"})
    return client


def _fetch(attachment: attachments.Attachment) -> StoredMedia:
    settings = get_settings()
    return fetch_to_store(
        _client(),
        attachment.url or "",
        get_media_store(),
        max_bytes=settings.media_max_bytes,
        deadline_ms=settings.media_fetch_timeout_ms,
        kind=attachment.kind,
    )


@dramatiq.actor(queue_name=queues.MEDIA, time_limit=30 * 60_000, **RETRIES)
def store_message_media(message_id: str) -> None:
    """Fetches a message's attachments into the media store and records them in ``metadata.media``."""
    attachments.settle_message_media(
        message_id,
        _fetch,
        signed_url,
        last_attempt=is_last_attempt(),
        fetch_deadline_ms=get_settings().media_fetch_timeout_ms,
    )


@register_sweep
def sweep_message_media() -> int:
    ids = attachments.stale()
    for message_id in ids:
        store_message_media.send(message_id)
    return len(ids)
