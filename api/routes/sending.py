"""``POST /messages.send``: stores the message pending, then hands it to the delivering actor."""

from __future__ import annotations

import logging
from typing import Any

import redis
from dramatiq.errors import BrokerError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from airy_actors import sending
from airy_actors.actors.sending import deliver_message
from airy_actors.errors import BadRequest
from airy_actors.representations import message_json
from api.bodies import Body
from api.database import in_database

logger = logging.getLogger(__name__)


def _accept_and_enqueue(request: sending.SendRequest) -> dict[str, Any]:
    message = sending.accept_send(request)  # committed on return
    try:
        deliver_message.send(message.id)
    except (BrokerError, redis.RedisError):
        # Stored is enough: the message is pending and the sweeper enqueues it.
        logger.warning("could not enqueue a send", extra={"message_id": message.id})
    return message_json(message)


async def messages_send(request: Request) -> JSONResponse:
    body = await Body.of(request)
    conversation_id = body.string("conversation_id")
    message = body.obj("message")
    if not message:
        raise BadRequest("message must not be empty: give it text or an attachment")
    send = sending.SendRequest(
        conversation_id=conversation_id,
        message=message,
        messaging_type=body.optional_string("messaging_type"),
        tag=body.optional_string("tag"),
    )
    return JSONResponse(await in_database(_accept_and_enqueue, send))


ROUTES: list[Route] = [Route("/messages.send", messages_send, methods=["POST"])]
