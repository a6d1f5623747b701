"""``GET /health``: 200 when the database and the broker answer."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from airy_actors.broker import broker
from airy_actors.db import database
from api import schemas
from api.operations import Operation, documented

logger = logging.getLogger(__name__)


def _check_database() -> str:
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means "not ok"; the reason goes to the log, not the client
        logger.warning("health: database check failed", extra={"error": type(exc).__name__})
        return "unavailable"


def _check_broker() -> str:
    try:
        broker.client.ping()
        return "ok"
    except Exception as exc:
        logger.warning("health: broker check failed", extra={"error": type(exc).__name__})
        return "unavailable"


@documented(
    Operation(
        "Whether the database and the broker answer",
        answers={200: schemas.Health, 503: schemas.Health},
        public=True,
    )
)
async def health(request: Request) -> JSONResponse:
    checks = {"database": await run_in_threadpool(_check_database), "broker": await run_in_threadpool(_check_broker)}
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ok", **checks})
    down = ", ".join(name for name, value in checks.items() if value != "ok")
    return JSONResponse({"status": "unavailable", "message": f"unavailable: {down}", **checks}, status_code=503)
