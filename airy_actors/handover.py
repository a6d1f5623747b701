"""The handover protocol from our side: passing a contact's thread to another app, or taking it back.

``conversations.passThreadControl`` and ``conversations.takeThreadControl`` run these in an actor (the jobs
machinery: synchronous up to ``AIRY_SYNC_TIMEOUT_MS``, then 202). Facebook's errors are classified like every
Graph call's. Once Facebook accepted, ``metadata.thread_owner`` follows at once; the handover webhook event
that Facebook sends afterwards finds it there and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from airy_actors import conversation_effects, reading
from airy_actors.db import write_transaction
from airy_actors.errors import BadRequest, NotFound
from airy_actors.graph import GraphClient
from airy_actors.models import Channel, Contact, Conversation
from airy_actors.timestamps import now_ms

logger = logging.getLogger(__name__)


def pass_thread(
    graph: GraphClient, *, conversation_id: str, target_app_id: str, metadata: str | None = None
) -> dict[str, Any]:
    """Passes the conversation's thread to ``target_app_id``. Returns the conversation as the API shows it.

    Raises:
      NotFound: no such conversation. BadRequest: its channel is disconnected.
      GraphError: Facebook refused (400 with its reason) or cannot be reached.
    """
    channel, psid = _thread(conversation_id)
    graph.pass_thread_control(channel.page_token or "", psid, target_app_id, metadata)
    return _owned_by(conversation_id, target_app_id)


def take_thread(graph: GraphClient, *, conversation_id: str, app_id: str | None, metadata: str | None = None) -> dict:
    """Takes the conversation's thread back for our app (``app_id``). Returns the conversation.

    Raises:
      NotFound, BadRequest, GraphError: as :func:`pass_thread`.
    """
    channel, psid = _thread(conversation_id)
    graph.take_thread_control(channel.page_token or "", psid, metadata)
    return _owned_by(conversation_id, app_id)


def _thread(conversation_id: str) -> tuple[Channel, str]:
    conversation = Conversation.get_or_none(Conversation.id == conversation_id)
    if conversation is None:
        raise NotFound(f"conversation_id {conversation_id} is not a known conversation")
    channel = Channel.get_by_id(conversation.channel_id)
    if not channel.connected or not channel.page_token:
        raise BadRequest(f"the channel {channel.id} of this conversation is disconnected")
    return channel, Contact.get_by_id(conversation.contact_id).source_contact_id


def _owned_by(conversation_id: str, app_id: str | None) -> dict[str, Any]:
    with write_transaction():
        conversation_effects.set_thread_owner(conversation_id, app_id, now_ms())
    logger.info("thread control changed", extra={"conversation_id": conversation_id, "app_id": app_id})
    return reading.conversation_info(conversation_id)
