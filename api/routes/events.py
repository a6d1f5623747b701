"""Events that could not be applied: ``POST /events.failed`` lists them, ``POST /events.retry`` tries one again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import event_failures
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse
from workers.ingestion import retry_failed_event


async def events_failed(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(event_failures.list_failed, **body.page()))


async def events_retry(request: Request) -> JSONResponse:
    body = await Body.of(request)
    failed_event_id = await in_database(event_failures.retry, body.string("id", max_length=36))
    retry_failed_event.send(failed_event_id)  # a lost enqueue is made good by the sweeper
    return JSONResponse({}, status_code=202)


ROUTES: list[Route] = [
    Route("/events.failed", events_failed, methods=["POST"]),
    Route("/events.retry", events_retry, methods=["POST"]),
]
