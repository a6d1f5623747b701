"""``POST /messages.send``: stores the message pending, then hands it to the delivering actor.

Sends are accepted in batches by api.send_writer; each request is answered with its own message or error.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import sending
from airy_actors.representations import channel_source, known_source, message_json
from api import answer_schemas, schemas
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse
from api.send_writer import writer


@operation(
    "Send a message into a conversation",
    body=schemas.MessagesSend,
    answers={200: answer_schemas.Message},
    errors=(404, 503),
    description="Answered at once with the message `pending`; an actor sends it, and it becomes `delivered` or "
    "`failed` (with Facebook's reason in `metadata.error`). Outside the 24-hour window a send needs the "
    "`HUMAN_AGENT` tag (7 days) or a `notification_token`, else 400.",
)
async def messages_send(request: Request, body: schemas.MessagesSend) -> JSONResponse:
    send = sending.SendRequest(
        conversation_id=body.conversation_id,
        message=body.message,
        messaging_type=body.messaging_type,
        tag=body.tag,
        notification_token=body.notification_token,
    )
    accepted = await writer.submit(send)
    # The channel's source is read once per process; the first time, on a connection that is handed back (this
    # is the event loop's thread, which must never keep one).
    source = known_source(accepted.channel_id) or await in_database(channel_source, accepted.channel_id)
    return JSONResponse(message_json(accepted, source))


ROUTES: list[Route] = [Route("/messages.send", messages_send, methods=["POST"])]
