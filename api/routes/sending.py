"""``POST /messages.send``: stores the message pending, then hands it to the delivering actor.

Sends are accepted in batches by api.send_writer; each request is answered with its own message or error.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from airy_actors import sending
from airy_actors.representations import message_json
from api import schemas
from api.operations import operation
from api.send_writer import writer


@operation(
    "Sends a message into a conversation: stored pending, then delivered by an actor",
    body=schemas.MessagesSend,
    answers={200: schemas.Message},
    errors=(404, 503),
    description="Outside the messaging window (24 hours after the contact's last message; 7 days with tag "
    "HUMAN_AGENT) it is refused with 400 before Facebook is asked.",
)
async def messages_send(request: Request, body: schemas.MessagesSend) -> JSONResponse:
    send = sending.SendRequest(
        conversation_id=body.conversation_id,
        message=body.message,
        messaging_type=body.messaging_type,
        tag=body.tag,
    )
    return JSONResponse(message_json(await writer.submit(send)))


ROUTES: list[Route] = [Route("/messages.send", messages_send, methods=["POST"])]
