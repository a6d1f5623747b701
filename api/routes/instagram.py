"""Instagram channels: ``instagram.connect`` and ``instagram.disconnect`` (also under ``channels.instagram.*``).

An Instagram professional account is connected through the Facebook page it is linked to, with that page's token;
the same Meta app and webhook serve it. Connect runs in an actor and is answered like ``facebook.connect``: the
channel within ``AIRY_SYNC_TIMEOUT_MS``, else 202 with a job to poll with ``jobs.info``.
"""

from __future__ import annotations

import logging

import redis
from dramatiq.errors import BrokerError
from starlette.requests import Request
from starlette.routing import Route

from airy_actors import channels
from airy_actors.config import Settings
from airy_actors.models import INSTAGRAM
from api import answer_schemas, schemas
from api import jobs as job_waits
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse
from api.routes.facebook_webhook import facebook_configured
from workers.channels import connect_instagram_account, disconnect_page

logger = logging.getLogger(__name__)


@operation(
    "Connect an Instagram account through its Facebook page",
    body=schemas.InstagramConnect,
    answers={200: answer_schemas.Channel, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def instagram_connect(request: Request, body: schemas.InstagramConnect) -> JSONResponse:
    settings: Settings = request.app.state.settings
    arguments = {"page_id": body.page_id, "account_id": body.account_id, "name": body.name, "image_url": body.image_url}
    answer = await job_waits.submit_and_wait(
        "instagram.connect",
        connect_instagram_account,
        arguments,
        secrets={"page_token": body.page_token},
        timeout_ms=settings.sync_timeout_ms,
    )
    return JSONResponse(answer.body, status_code=answer.status_code)


@operation(
    "Disconnect an Instagram account",
    body=schemas.ChannelRef,
    answers={202: answer_schemas.Empty},
    errors=(503,),
    before=facebook_configured,
    description="An unknown channel id, or one of another source, is 400; an already disconnected channel is 202.",
)
async def instagram_disconnect(request: Request, body: schemas.ChannelRef) -> JSONResponse:
    channel_id = body.channel_id
    if await in_database(channels.begin_disconnect, channel_id, source=INSTAGRAM):
        try:
            disconnect_page.send(channel_id)
        except (BrokerError, redis.RedisError):
            # The channel is disconnected already; the sweeper unsubscribes and deletes the token later.
            logger.warning("could not enqueue a disconnect", extra={"channel_id": channel_id})
    return JSONResponse({}, status_code=202)


ROUTES: list[Route] = [
    Route(f"{prefix}.{verb}", endpoint, methods=["POST"])
    for prefix in ("/instagram", "/channels.instagram")
    for verb, endpoint in (("connect", instagram_connect), ("disconnect", instagram_disconnect))
]
