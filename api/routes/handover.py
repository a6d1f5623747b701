"""``conversations.passThreadControl`` and ``conversations.takeThreadControl``: the handover protocol, as jobs.

Synchronous like ``facebook.connect``: the answer is the conversation once Facebook accepted, or 202 with a
job to poll past ``AIRY_SYNC_TIMEOUT_MS``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api import answer_schemas, schemas
from api import jobs as job_waits
from api.operations import operation
from api.responses import JSONResponse
from api.routes.facebook_webhook import facebook_configured
from workers.handover import pass_thread_control, take_thread_control


@operation(
    "Pass the thread to another app (handover protocol)",
    body=schemas.PassThreadControl,
    answers={200: answer_schemas.Conversation, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def conversations_pass_thread_control(request: Request, body: schemas.PassThreadControl) -> JSONResponse:
    arguments = {
        "conversation_id": body.conversation_id,
        "target_app_id": body.target_app_id,
        "metadata": body.metadata,
    }
    return await job_waits.submit_and_wait(request, "conversations.passThreadControl", pass_thread_control, arguments)


@operation(
    "Take the thread back (handover protocol)",
    body=schemas.TakeThreadControl,
    answers={200: answer_schemas.Conversation, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def conversations_take_thread_control(request: Request, body: schemas.TakeThreadControl) -> JSONResponse:
    arguments = {"conversation_id": body.conversation_id, "metadata": body.metadata}
    return await job_waits.submit_and_wait(request, "conversations.takeThreadControl", take_thread_control, arguments)


ROUTES: list[Route] = [
    Route("/conversations.passThreadControl", conversations_pass_thread_control, methods=["POST"]),
    Route("/conversations.takeThreadControl", conversations_take_thread_control, methods=["POST"]),
]
