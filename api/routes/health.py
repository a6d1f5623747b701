"""``GET /health``: 200 when the database and the broker answer."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from airy_actors.db import database
from api.facebook_writer import writer
from api.responses import JSONResponse
from workers.broker import broker

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


def _spool() -> dict[str, object]:
    try:
        return {"bytes": writer.spool.size_bytes(), "spooling": writer.spooling}
    except OSError as exc:
        logger.warning("health: spool check failed", extra={"error": type(exc).__name__})
        return {"bytes": None, "spooling": writer.spooling}


async def health(request: Request) -> JSONResponse:
    checks = {"database": await run_in_threadpool(_check_database), "broker": await run_in_threadpool(_check_broker)}
    spool = {"spool": await run_in_threadpool(_spool)}
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ok", **checks, **spool})
    down = ", ".join(name for name, value in checks.items() if value != "ok")
    return JSONResponse(
        {"status": "unavailable", "message": f"unavailable: {down}", **checks, **spool}, status_code=503
    )
