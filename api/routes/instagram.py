"""Instagram channels: ``instagram.connect`` and ``instagram.disconnect`` (also under ``channels.instagram.*``).

An Instagram professional account is connected through the Facebook page it is linked to, with that page's token;
the same Meta app and webhook serve it. Connect runs in an actor and is answered like ``facebook.connect``: the
channel within ``AIRY_SYNC_TIMEOUT_MS``, else 202 with a job to poll with ``jobs.info``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from airy_actors.models import INSTAGRAM
from api import answer_schemas, schemas
from api import jobs as job_waits
from api.operations import operation
from api.responses import JSONResponse
from api.routes.channels import disconnect
from api.routes.facebook_webhook import facebook_configured
from workers.channels import connect_instagram_account


@operation(
    "Connect an Instagram account through its Facebook page",
    body=schemas.InstagramConnect,
    answers={200: answer_schemas.Channel, 202: answer_schemas.JobPending},
    errors=(404, 503),
    before=facebook_configured,
    description=job_waits.SYNCHRONOUS,
)
async def instagram_connect(request: Request, body: schemas.InstagramConnect) -> JSONResponse:
    arguments = {"page_id": body.page_id, "account_id": body.account_id, "name": body.name, "image_url": body.image_url}
    return await job_waits.submit_and_wait(
        request, "instagram.connect", connect_instagram_account, arguments, secrets={"page_token": body.page_token}
    )


@operation(
    "Disconnect an Instagram account",
    body=schemas.ChannelRef,
    answers={202: answer_schemas.Empty},
    errors=(503,),
    before=facebook_configured,
    description="An unknown channel id, or one of another source, is 400; an already disconnected channel is 202.",
)
async def instagram_disconnect(request: Request, body: schemas.ChannelRef) -> JSONResponse:
    return await disconnect(body.channel_id, source=INSTAGRAM)


ROUTES: list[Route] = [
    Route(f"{prefix}.{verb}", endpoint, methods=["POST"])
    for prefix in ("/instagram", "/channels.instagram")
    for verb, endpoint in (("connect", instagram_connect), ("disconnect", instagram_disconnect))
]
