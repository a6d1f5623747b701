"""Channels: ``facebook.connect|disconnect|explore`` (also under ``channels.facebook.*``), ``channels.list|info|
update`` and ``jobs.info``.

Connect and explore run in actors; the endpoint waits for its job up to ``AIRY_SYNC_TIMEOUT_MS`` and then
answers 202 with the job's id, to be polled with ``jobs.info``.
"""

from __future__ import annotations

import logging

import redis
from dramatiq.errors import BrokerError
from starlette.requests import Request
from starlette.routing import Route

from airy_actors import channels, jobs
from airy_actors.config import Settings
from api import jobs as job_waits
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse
from api.routes.facebook_webhook import require_facebook
from workers.channels import connect_page, disconnect_page, explore_pages

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 64
MAX_TOKEN_LENGTH = 4096
MAX_URL_LENGTH = 2048


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _respond(answer: jobs.Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status_code)


async def facebook_connect(request: Request) -> JSONResponse:
    settings = _settings(request)
    require_facebook(settings)
    body = await Body.of(request)
    arguments = {
        "page_id": body.string("page_id", max_length=MAX_ID_LENGTH),
        "name": body.optional_string("name"),
        "image_url": body.optional_string("image_url", max_length=MAX_URL_LENGTH),
    }
    secrets = {"page_token": body.string("page_token", max_length=MAX_TOKEN_LENGTH)}
    answer = await job_waits.submit_and_wait(
        "facebook.connect", connect_page, arguments, secrets=secrets, timeout_ms=settings.sync_timeout_ms
    )
    return _respond(answer)


async def facebook_explore(request: Request) -> JSONResponse:
    settings = _settings(request)
    require_facebook(settings)
    body = await Body.of(request)
    secrets = {"auth_token": body.string("auth_token", max_length=MAX_TOKEN_LENGTH)}
    answer = await job_waits.submit_and_wait(
        "facebook.explore", explore_pages, {}, secrets=secrets, timeout_ms=settings.sync_timeout_ms
    )
    return _respond(answer)


async def facebook_disconnect(request: Request) -> JSONResponse:
    require_facebook(_settings(request))
    body = await Body.of(request)
    channel_id = body.string("channel_id", max_length=MAX_ID_LENGTH)
    if await in_database(channels.begin_disconnect, channel_id):
        try:
            disconnect_page.send(channel_id)
        except (BrokerError, redis.RedisError):
            # The channel is disconnected already; the sweeper unsubscribes and deletes the token later.
            logger.warning("could not enqueue a disconnect", extra={"channel_id": channel_id})
    return JSONResponse({}, status_code=202)


async def jobs_info(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(jobs.job_info, body.string("job_id", max_length=MAX_ID_LENGTH)))


async def channels_list(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(channels.list_channels, body.optional_string("source", max_length=32)))


async def channels_info(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(channels.channel_info, body.string("channel_id", max_length=MAX_ID_LENGTH)))


async def channels_update(request: Request) -> JSONResponse:
    body = await Body.of(request)
    channel_id = body.string("channel_id", max_length=MAX_ID_LENGTH)
    name = body.optional_string("name")
    image_url = body.optional_string("image_url", max_length=MAX_URL_LENGTH)
    return JSONResponse(await in_database(channels.update_channel, channel_id, name=name, image_url=image_url))


ROUTES: list[Route] = [
    *(
        Route(f"{prefix}.{verb}", endpoint, methods=["POST"])
        for prefix in ("/facebook", "/channels.facebook")
        for verb, endpoint in (
            ("connect", facebook_connect),
            ("disconnect", facebook_disconnect),
            ("explore", facebook_explore),
        )
    ),
    Route("/channels.list", channels_list, methods=["POST"]),
    Route("/channels.info", channels_info, methods=["POST"]),
    Route("/channels.update", channels_update, methods=["POST"]),
    Route("/jobs.info", jobs_info, methods=["POST"]),
]
