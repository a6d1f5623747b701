"""``POST /messages.send``: stores the message pending, then hands it to the delivering actor.

Sends are accepted in batches by api.send_writer; each request is answered with its own message or error.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import sending
from airy_actors.errors import BadRequest
from airy_actors.representations import channel_source, known_source, message_json
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse
from api.send_writer import writer


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
        notification_token=body.optional_string("notification_token"),
    )
    accepted = await writer.submit(send)
    # The channel's source is read once per process; the first time, on a connection that is handed back (this
    # is the event loop's thread, which must never keep one).
    source = known_source(accepted.channel_id) or await in_database(channel_source, accepted.channel_id)
    return JSONResponse(message_json(accepted, source))


ROUTES: list[Route] = [Route("/messages.send", messages_send, methods=["POST"])]
