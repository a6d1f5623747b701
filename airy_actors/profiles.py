"""Contacts' profiles: name and picture fetched from the Graph API once, after the first message.

Messenger's User Profile API gives ``first_name``, ``last_name`` and ``profile_pic`` for a PSID: the name shown is
``"<first_name> <last_name>"``. Instagram's gives ``name``, ``username`` and ``profile_pic`` for an IGSID, any of
which may be missing: the name shown is ``name``, else ``@username``.
"""

from __future__ import annotations

import logging
from typing import Any

from airy_actors import outbox
from airy_actors.db import write_transaction
from airy_actors.graph import GraphClient
from airy_actors.models import FACEBOOK, INSTAGRAM, Channel, Contact, Conversation
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


def fetch_profile(graph: GraphClient, channel: Channel, source_contact_id: str) -> dict[str, Any]:
    """A contact's profile as the Graph API gives it for the channel's platform.

    Raises:
      GraphError: as every Graph call.
    """
    if channel.source == INSTAGRAM:
        return graph.instagram_profile(source_contact_id, channel.page_token or "")
    return graph.profile(source_contact_id, channel.page_token or "")


def display_name_of(profile: dict[str, Any], source: str = FACEBOOK) -> str | None:
    """The name to show for a fetched profile; None when the profile names nobody."""
    if source == INSTAGRAM:
        name = profile.get("name")
        if isinstance(name, str) and name.strip():
            return name
        username = profile.get("username")
        return f"@{username}" if isinstance(username, str) and username else None
    name = " ".join(str(part) for part in (profile.get("first_name"), profile.get("last_name")) if part)
    return name or None


def apply_profile(contact_id: str, profile: dict[str, Any] | None, *, source: str = FACEBOOK) -> None:
    """Stores a fetched profile, or that fetching it failed for good (``profile`` None).

    A fetched profile changes how the conversation shows: ``conversation.updated`` goes into the outbox in
    the same transaction. A failed fetch changes nothing visible.

    Parameters:
      source: the platform of the contact's channel, which says what the profile's fields are.
    """
    if profile is None:
        Contact.update(profile_state="failed").where(Contact.id == contact_id).execute()
        return
    picture = profile.get("profile_pic")
    with write_transaction():
        Contact.update(
            display_name=display_name_of(profile, source),
            avatar_url=picture if isinstance(picture, str) and picture else None,
            profile_state="fetched",
        ).where(Contact.id == contact_id).execute()
        conversation = Conversation.get_or_none(Conversation.contact == contact_id)
        if conversation is not None:
            outbox.conversation_updated(conversation)
