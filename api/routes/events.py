"""Events that could not be applied: ``POST /events.failed`` lists them, ``POST /events.retry`` tries one again."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import event_failures
from api import answer_schemas, schemas
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse
from workers.ingestion import retry_failed_event


@operation(
    "Events that could not be applied after ten attempts, most recently failed first",
    body=schemas.Paged,
    answers={200: answer_schemas.FailedEventPage},
)
async def events_failed(request: Request, body: schemas.Paged) -> JSONResponse:
    return JSONResponse(await in_database(event_failures.list_failed, **body.page()))


@operation(
    "Give a failed event one more attempt", body=schemas.EventsRetry, answers={202: answer_schemas.Empty}, errors=(404,)
)
async def events_retry(request: Request, body: schemas.EventsRetry) -> JSONResponse:
    failed_event_id = await in_database(event_failures.retry, body.id)
    retry_failed_event.send(failed_event_id)  # a lost enqueue is made good by the sweeper
    return JSONResponse({}, status_code=202)


ROUTES: list[Route] = [
    Route("/events.failed", events_failed, methods=["POST"]),
    Route("/events.retry", events_retry, methods=["POST"]),
]
