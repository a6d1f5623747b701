"""``conversations.passThreadControl`` and ``conversations.takeThreadControl``: the handover protocol, as jobs.

Synchronous like ``facebook.connect``: the answer is the conversation once Facebook accepted, or 202 with a
job to poll past ``AIRY_SYNC_TIMEOUT_MS``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from api import jobs as job_waits
from api.bodies import Body
from api.responses import JSONResponse
from api.routes.facebook_webhook import require_facebook
from workers.handover import pass_thread_control, take_thread_control

MAX_ID_LENGTH = 255
MAX_METADATA_LENGTH = 1000  # Facebook's limit on a handover's metadata string


async def conversations_pass_thread_control(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    require_facebook(settings)
    body = await Body.of(request)
    arguments = {
        "conversation_id": body.string("conversation_id", max_length=MAX_ID_LENGTH),
        "target_app_id": body.string("target_app_id", max_length=MAX_ID_LENGTH),
        "metadata": body.optional_string("metadata", max_length=MAX_METADATA_LENGTH),
    }
    answer = await job_waits.submit_and_wait(
        "conversations.passThreadControl", pass_thread_control, arguments, timeout_ms=settings.sync_timeout_ms
    )
    return JSONResponse(answer.body, status_code=answer.status_code)


async def conversations_take_thread_control(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    require_facebook(settings)
    body = await Body.of(request)
    arguments = {
        "conversation_id": body.string("conversation_id", max_length=MAX_ID_LENGTH),
        "metadata": body.optional_string("metadata", max_length=MAX_METADATA_LENGTH),
    }
    answer = await job_waits.submit_and_wait(
        "conversations.takeThreadControl", take_thread_control, arguments, timeout_ms=settings.sync_timeout_ms
    )
    return JSONResponse(answer.body, status_code=answer.status_code)


ROUTES: list[Route] = [
    Route("/conversations.passThreadControl", conversations_pass_thread_control, methods=["POST"]),
    Route("/conversations.takeThreadControl", conversations_take_thread_control, methods=["POST"]),
]
