"""Contacts' profiles: name and picture fetched from the Graph API once, after the first message."""

from __future__ import annotations

import logging
from typing import Any

from airy_actors import outbox
from airy_actors.db import write_transaction
from airy_actors.models import Contact, Conversation
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)

PROFILE_RETRY_AFTER_MS = 5 * 60_000  # a profile still pending this long lost its actor message
PROFILE_GIVE_UP_MS = 24 * 3_600_000


def stale_profiles(limit: int = 200) -> list[str]:
    """Contacts whose profile fetch was lost: pending for PROFILE_RETRY_AFTER_MS, created within a day."""
    cutoff = now_ms() - PROFILE_RETRY_AFTER_MS
    stale = (
        Contact.select(Contact.id)
        .where(
            (Contact.profile_state == "pending")
            & (Contact.created_at < cutoff)
            & (Contact.created_at > cutoff - PROFILE_GIVE_UP_MS)
        )
        .limit(limit)
    )
    return [contact.id for contact in stale]


def apply_profile(contact_id: str, profile: dict[str, Any] | None) -> None:
    """Stores a fetched profile, or that fetching it failed for good (``profile`` None).

    A fetched profile changes how the conversation shows: ``conversation.updated`` goes into the outbox in
    the same transaction. A failed fetch changes nothing visible.
    """
    from airy_actors.models import Contact

    if profile is None:
        Contact.update(profile_state="failed").where(Contact.id == contact_id).execute()
        return
    name = " ".join(str(part) for part in (profile.get("first_name"), profile.get("last_name")) if part)
    with write_transaction():
        Contact.update(
            display_name=name or None,
            avatar_url=profile.get("profile_pic"),
            profile_state="fetched",
        ).where(Contact.id == contact_id).execute()
        conversation = Conversation.get_or_none(Conversation.contact == contact_id)
        if conversation is not None:
            outbox.conversation_updated(conversation)
