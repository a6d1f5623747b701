"""Integrator webhooks: ``webhooks.subscribe|unsubscribe|info|list|deliveries|replay``."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import integrations, outbox
from api.bodies import Body
from api.database import in_database
from api.responses import JSONResponse
from workers.integrations import start_lane


async def subscribe(request: Request) -> JSONResponse:
    body = await Body.of(request)
    subscription = await in_database(
        integrations.subscribe,
        body.string("url", max_length=integrations.MAX_URL_LENGTH),
        headers=body.optional_obj("headers"),
        events=body.optional_list("events"),
        signature_key=body.optional_string("signature_key"),
    )
    # Other processes may believe for this long that nobody wants events; once it has passed, every change
    # written anywhere reaches the new subscription.
    await asyncio.sleep(outbox.SUBSCRIPTIONS_CACHE_MS / 1000)
    return JSONResponse(subscription)


async def unsubscribe(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(integrations.unsubscribe, body.string("id")))


async def info(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(await in_database(integrations.subscription_info, body.string("id")))


async def list_(request: Request) -> JSONResponse:
    await Body.of(request)
    return JSONResponse(await in_database(integrations.list_subscriptions))


async def deliveries(request: Request) -> JSONResponse:
    body = await Body.of(request)
    return JSONResponse(
        await in_database(
            integrations.list_deliveries,
            body.string("id"),
            **body.page(),
        )
    )


async def replay(request: Request) -> JSONResponse:
    body = await Body.of(request)
    delivery, lane = await in_database(integrations.replay, body.string("delivery_id"))
    start_lane(lane)
    return JSONResponse(delivery)


ROUTES: list[Route] = [
    Route("/webhooks.subscribe", subscribe, methods=["POST"]),
    Route("/webhooks.unsubscribe", unsubscribe, methods=["POST"]),
    Route("/webhooks.info", info, methods=["POST"]),
    Route("/webhooks.list", list_, methods=["POST"]),
    Route("/webhooks.deliveries", deliveries, methods=["POST"]),
    Route("/webhooks.replay", replay, methods=["POST"]),
]
