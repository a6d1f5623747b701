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
from api import answer_schemas, schemas
from api import jobs as job_waits
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse
from api.routes.facebook_webhook import facebook_configured
from workers.channels import connect_page, disconnect_page, explore_pages

logger = logging.getLogger(__name__)


@operation(
    "Connect a Facebook page",
    body=schemas.FacebookConnect,
    answers={200: answer_schemas.Channel, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def facebook_connect(request: Request, body: schemas.FacebookConnect) -> JSONResponse:
    arguments = {"page_id": body.page_id, "name": body.name, "image_url": body.image_url}
    return await job_waits.submit_and_wait(
        request, "facebook.connect", connect_page, arguments, secrets={"page_token": body.page_token}
    )


@operation(
    "List the pages that a user token manages",
    body=schemas.FacebookExplore,
    answers={200: answer_schemas.ExploredPages, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def facebook_explore(request: Request, body: schemas.FacebookExplore) -> JSONResponse:
    return await job_waits.submit_and_wait(
        request, "facebook.explore", explore_pages, {}, secrets={"auth_token": body.auth_token}
    )


@operation(
    "Disconnect a Facebook page",
    body=schemas.ChannelRef,
    answers={202: answer_schemas.Empty},
    errors=(503,),
    before=facebook_configured,
    description="An unknown channel id is 400 (per the seed); an already disconnected channel is 202.",
)
async def facebook_disconnect(request: Request, body: schemas.ChannelRef) -> JSONResponse:
    return await disconnect(body.channel_id)


async def disconnect(channel_id: str, source: str | None = None) -> JSONResponse:
    """Disconnects a channel at once (of ``source``, when given) and enqueues its unsubscription: 202.

    Raises:
      BadRequest: when no such channel exists (of that source).
    """
    if await in_database(channels.begin_disconnect, channel_id, source=source):
        try:
            disconnect_page.send(channel_id)
        except (BrokerError, redis.RedisError):
            # The channel is disconnected already; the sweeper unsubscribes and deletes the token later.
            logger.warning("could not enqueue a disconnect", extra={"channel_id": channel_id})
    return JSONResponse({}, status_code=202)


@operation("The state and result of a job", body=schemas.JobsInfo, answers={200: answer_schemas.JobInfo}, errors=(404,))
async def jobs_info(request: Request, body: schemas.JobsInfo) -> JSONResponse:
    return JSONResponse(await in_database(jobs.job_info, body.job_id))


@operation("The connected channels", body=schemas.ChannelsList, answers={200: answer_schemas.ChannelList})
async def channels_list(request: Request, body: schemas.ChannelsList) -> JSONResponse:
    return JSONResponse(await in_database(channels.list_channels, body.source))


@operation("A channel", body=schemas.ChannelRef, answers={200: answer_schemas.Channel}, errors=(404,))
async def channels_info(request: Request, body: schemas.ChannelRef) -> JSONResponse:
    return JSONResponse(await in_database(channels.channel_info, body.channel_id))


@operation(
    "Rename a channel or change its picture",
    body=schemas.ChannelsUpdate,
    answers={200: answer_schemas.Channel},
    errors=(404,),
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
