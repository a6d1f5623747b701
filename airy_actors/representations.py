"""What the API shows of each model: the JSON shapes of SPEC section 5. Secrets never appear here.

A message shows the ``source`` of its channel (``facebook`` or ``instagram``). Callers that hold the channel pass
it; otherwise it is read once per channel and kept, a channel's source never changing.
"""

from __future__ import annotations

import threading
from typing import Any

from airy_actors.models import FACEBOOK, INSTAGRAM, Channel, Contact, Conversation, Message
from airy_actors.timestamps import iso_ms

_sources: dict[str, str] = {}  # channel id -> source: written once per channel, never changed
_sources_lock = threading.Lock()


def channel_json(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "image_url": channel.image_url,
        "source": channel.source,
        "source_channel_id": channel.source_channel_id,
        "connected": channel.connected,
        "webhook_subscribed": channel.webhook_subscribed,
        "token_valid": channel.token_valid,
    }


def message_json(message: Message, source: str | None = None) -> dict[str, Any]:
    """A message as the API shows it.

    Parameters:
      source: its channel's source, when the caller has the channel; else it is looked up.
    """
    return {
        "id": message.id,
        "content": message.content,
        "delivery_state": message.delivery_state,
        "from_contact": message.from_contact,
        "sender": {"id": message.sender_id},
        "source": source or channel_source(message.channel_id),
        "sent_at": iso_ms(message.sent_at),
        "metadata": message.metadata,
    }


def known_source(channel_id: str) -> str | None:
    """The source of a channel when this process has read it already, else None (no database needed)."""
    return _sources.get(channel_id)


def channel_source(channel_id: str) -> str:
    """The source of a channel (``facebook`` or ``instagram``), read once per channel and process."""
    source = _sources.get(channel_id)
    if source is None:
        row = Channel.select(Channel.source).where(Channel.id == channel_id).first()
        source = row.source if row is not None else FACEBOOK
        if row is not None:
            with _sources_lock:
                _sources[channel_id] = source
    return source


def contact_json(contact: Contact, source: str = FACEBOOK) -> dict[str, Any]:
    return {"display_name": display_name(contact, source), "avatar_url": contact.avatar_url}


def display_name(contact: Contact, source: str = FACEBOOK) -> str:
    """The contact's name from its profile, or a readable stand-in until (or unless) it is known."""
    if contact.display_name:
        return contact.display_name
    platform = "Instagram" if source == INSTAGRAM else "Facebook"
    return f"{platform} user {contact.source_contact_id[-4:]}"


def conversation_json(
    conversation: Conversation, channel: Channel, contact: Contact, last_message: Message | None
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "channel": channel_json(channel),
        "created_at": iso_ms(conversation.created_at),
        "contact": contact_json(contact, channel.source),
        "last_message": message_json(last_message, channel.source) if last_message is not None else None,
        "unread_message_count": conversation.unread_message_count,
        "metadata": conversation.metadata or {},
    }
