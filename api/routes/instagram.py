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
from api import jobs as job_waits
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse
from api.routes.channels import MAX_ID_LENGTH, MAX_TOKEN_LENGTH, MAX_URL_LENGTH
from api.routes.facebook_webhook import require_facebook
from workers.channels import connect_instagram_account, disconnect_page

logger = logging.getLogger(__name__)


async def instagram_connect(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    require_facebook(settings)
    body = await Body.of(request)
    arguments = {
        "page_id": body.string("page_id", max_length=MAX_ID_LENGTH),
        "account_id": body.string("account_id", max_length=MAX_ID_LENGTH),
        "name": body.optional_string("name"),
        "image_url": body.optional_string("image_url", max_length=MAX_URL_LENGTH),
    }
    secrets = {"page_token": body.string("page_token", max_length=MAX_TOKEN_LENGTH)}
    answer = await job_waits.submit_and_wait(
        "instagram.connect", connect_instagram_account, arguments, secrets=secrets, timeout_ms=settings.sync_timeout_ms
    )
    return JSONResponse(answer.body, status_code=answer.status_code)


async def instagram_disconnect(request: Request) -> JSONResponse:
    require_facebook(request.app.state.settings)
    body = await Body.of(request)
    channel_id = body.string("channel_id", max_length=MAX_ID_LENGTH)
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
