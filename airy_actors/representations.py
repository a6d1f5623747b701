"""What the API shows of each model: the JSON shapes of SPEC section 5. Secrets never appear here."""

from __future__ import annotations

from typing import Any

from airy_actors.models import Channel, Contact, Conversation, Message
from airy_actors.timestamps import iso_ms


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


def message_json(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "content": message.content,
        "delivery_state": message.delivery_state,
        "from_contact": message.from_contact,
        "sender": {"id": message.sender_id},
        "source": "facebook",
        "sent_at": iso_ms(message.sent_at),
        "metadata": message.metadata,
    }


def contact_json(contact: Contact) -> dict[str, Any]:
    return {"display_name": display_name(contact), "avatar_url": contact.avatar_url}


def display_name(contact: Contact) -> str:
    """The contact's name from its profile, or a readable stand-in until (or unless) it is known."""
    if contact.display_name:
        return contact.display_name
    return f"Facebook user {contact.source_contact_id[-4:]}"


def conversation_json(
    conversation: Conversation, channel: Channel, contact: Contact, last_message: Message | None
) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "channel": channel_json(channel),
        "created_at": iso_ms(conversation.created_at),
        "contact": contact_json(contact),
        "last_message": message_json(last_message) if last_message is not None else None,
        "unread_message_count": conversation.unread_message_count,
        "metadata": conversation.metadata or {},
    }
