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
from starlette.responses import JSONResponse
from starlette.routing import Route

from airy_actors import channels, jobs
from airy_actors.actors.channels import connect_page, disconnect_page, explore_pages
from airy_actors.config import Settings
from api import schemas
from api.database import in_database
from api.operations import operation
from api.routes.webhook import require_facebook

logger = logging.getLogger(__name__)

SYNCHRONOUS = "Runs in an actor; past AIRY_SYNC_TIMEOUT_MS it answers 202 with a job to poll with jobs.info."


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _facebook_configured(request: Request) -> None:
    require_facebook(_settings(request))


def _respond(answer: jobs.Answer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status_code)


@operation(
    "Connects a Facebook page: checks its token, subscribes the app to its webhook, stores the channel",
    body=schemas.FacebookConnect,
    answers={200: schemas.Channel, 202: schemas.JobPending},
    errors=(503,),
    before=_facebook_configured,
    description=SYNCHRONOUS,
)
async def facebook_connect(request: Request, body: schemas.FacebookConnect) -> JSONResponse:
    settings = _settings(request)
    arguments = {"page_id": body.page_id, "name": body.name, "image_url": body.image_url}
    secrets = {"page_token": body.page_token}
    answer = await jobs.submit_and_wait(
        "facebook.connect", connect_page, arguments, secrets=secrets, timeout_ms=settings.sync_timeout_ms
    )
    return _respond(answer)


@operation(
    "Lists the pages that a user token can manage",
    body=schemas.FacebookExplore,
    answers={200: schemas.ExploredPages, 202: schemas.JobPending},
    errors=(503,),
    before=_facebook_configured,
    description=SYNCHRONOUS,
)
async def facebook_explore(request: Request, body: schemas.FacebookExplore) -> JSONResponse:
    settings = _settings(request)
    secrets = {"auth_token": body.auth_token}
    answer = await jobs.submit_and_wait(
        "facebook.explore", explore_pages, {}, secrets=secrets, timeout_ms=settings.sync_timeout_ms
    )
    return _respond(answer)


@operation(
    "Disconnects a channel: unsubscribes the app from the page and deletes its token",
    body=schemas.FacebookDisconnect,
    answers={202: schemas.Empty},
    errors=(503,),
    before=_facebook_configured,
    description="An unknown channel is 400 (as the seed says); an already disconnected one is 202 again.",
)
async def facebook_disconnect(request: Request, body: schemas.FacebookDisconnect) -> JSONResponse:
    channel_id = body.channel_id
    if await in_database(channels.begin_disconnect, channel_id):
        try:
            disconnect_page.send(channel_id)
        except (BrokerError, redis.RedisError):
            # The channel is disconnected already; the sweeper unsubscribes and deletes the token later.
            logger.warning("could not enqueue a disconnect", extra={"channel_id": channel_id})
    return JSONResponse({}, status_code=202)


@operation(
    "The state of a job that a synchronous endpoint answered with 202",
    body=schemas.JobsInfo,
    answers={200: schemas.JobInfo},
    errors=(404, 503),
)
async def jobs_info(request: Request, body: schemas.JobsInfo) -> JSONResponse:
    return JSONResponse(await in_database(jobs.job_info, body.job_id))


@operation("The connected channels", body=schemas.ChannelsList, answers={200: schemas.ChannelList}, errors=(503,))
async def channels_list(request: Request, body: schemas.ChannelsList) -> JSONResponse:
    return JSONResponse(await in_database(channels.list_channels, body.source))


@operation("One channel", body=schemas.ChannelsInfo, answers={200: schemas.Channel}, errors=(404, 503))
async def channels_info(request: Request, body: schemas.ChannelsInfo) -> JSONResponse:
    return JSONResponse(await in_database(channels.channel_info, body.channel_id))


@operation(
    "Changes a channel's name or picture",
    body=schemas.ChannelsUpdate,
    answers={200: schemas.Channel},
    errors=(404, 503),
)
async def channels_update(request: Request, body: schemas.ChannelsUpdate) -> JSONResponse:
    return JSONResponse(
        await in_database(channels.update_channel, body.channel_id, name=body.name, image_url=body.image_url)
    )


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
