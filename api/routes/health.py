"""``GET /health``: 200 when the database and the broker answer and a live worker serves every queue.

503 otherwise, with a message naming what is missing: the database, the broker, or the queues that no live
worker process serves (read from the workers' heartbeats, see ``workers.heartbeat``).
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from airy_actors.db import database
from api import answer_schemas
from api.facebook_writer import writer
from api.operations import Operation, documented
from api.responses import JSONResponse
from workers import queues
from workers.broker import broker
from workers.heartbeat import workers_by_queue

logger = logging.getLogger(__name__)


def _check_database() -> str:
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure means "not ok"; the reason goes to the log, not the client
        logger.warning("health: database check failed", extra={"error": type(exc).__name__})
        return "unavailable"


def _check_broker_and_workers() -> tuple[str, dict[str, int] | None]:
    """The broker's state, and how many live worker processes serve each queue (None when unknown)."""
    try:
        broker.client.ping()
    except Exception as exc:
        logger.warning("health: broker check failed", extra={"error": type(exc).__name__})
        return "unavailable", None
    try:
        serving = workers_by_queue(broker.client, broker.namespace)
    except Exception as exc:
        logger.warning("health: heartbeat check failed", extra={"error": type(exc).__name__})
        return "unavailable", None
    return "ok", {queue: serving.get(queue, 0) for queue in queues.ALL}


def _spool() -> dict[str, object]:
    try:
        return {"bytes": writer.spool.size_bytes(), "spooling": writer.spooling}
    except OSError as exc:
        logger.warning("health: spool check failed", extra={"error": type(exc).__name__})
        return {"bytes": None, "spooling": writer.spooling}


@documented(
    Operation(
        "Whether the database and the broker answer and a live worker serves every queue",
        answers={200: answer_schemas.Health, 503: answer_schemas.Health},
        public=True,
        description="503 names what is missing: the database, the broker, or the queues no live worker serves.",
    )
)
async def health(request: Request) -> JSONResponse:
    checks = {"database": await run_in_threadpool(_check_database)}
    checks["broker"], workers = await run_in_threadpool(_check_broker_and_workers)
    body: dict[str, object] = {**checks, "spool": await run_in_threadpool(_spool)}
    problems = []
    down = ", ".join(name for name, value in checks.items() if value != "ok")
    if down:
        problems.append(f"unavailable: {down}")
    if workers is not None:
        body["queues"] = workers
        unserved = ", ".join(queue for queue, count in workers.items() if count == 0)
        if unserved:
            problems.append(f"no live worker serves: {unserved}")
    if not problems:
        return JSONResponse({"status": "ok", **body})
    return JSONResponse({"status": "unavailable", "message": "; ".join(problems), **body}, status_code=503)
