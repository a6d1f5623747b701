"""Integrator webhooks: ``webhooks.subscribe|unsubscribe|info|list|deliveries|replay``."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from airy_actors import integrations, outbox
from airy_actors.actors.webhooks import start_lane
from api import schemas
from api.database import in_database
from api.operations import operation


@operation(
    "Subscribes a URL to the events of SPEC section 6",
    body=schemas.WebhooksSubscribe,
    answers={200: schemas.Subscription},
    errors=(503,),
)
async def subscribe(request: Request, body: schemas.WebhooksSubscribe) -> JSONResponse:
    subscription = await in_database(
        integrations.subscribe,
        body.url,
        headers=body.headers,
        events=body.events,
        signature_key=body.signature_key,
    )
    # Other processes may believe for this long that nobody wants events; once it has passed, every change
    # written anywhere reaches the new subscription.
    await asyncio.sleep(outbox.SUBSCRIPTIONS_CACHE_MS / 1000)
    return JSONResponse(subscription)


@operation(
    "Deletes a subscription; nothing more is sent to it",
    body=schemas.WebhooksId,
    answers={200: schemas.Subscription},
    errors=(404, 503),
)
async def unsubscribe(request: Request, body: schemas.WebhooksId) -> JSONResponse:
    return JSONResponse(await in_database(integrations.unsubscribe, body.id))


@operation("One subscription", body=schemas.WebhooksId, answers={200: schemas.Subscription}, errors=(404, 503))
async def info(request: Request, body: schemas.WebhooksId) -> JSONResponse:
    return JSONResponse(await in_database(integrations.subscription_info, body.id))


@operation("Every subscription", body=schemas.WebhooksList, answers={200: schemas.SubscriptionList}, errors=(503,))
async def list_(request: Request, body: schemas.WebhooksList) -> JSONResponse:
    return JSONResponse(await in_database(integrations.list_subscriptions))


@operation(
    "A subscription's deliveries, newest event first",
    body=schemas.WebhooksDeliveries,
    answers={200: schemas.DeliveryPage},
    errors=(404, 503),
)
async def deliveries(request: Request, body: schemas.WebhooksDeliveries) -> JSONResponse:
    return JSONResponse(
        await in_database(
            integrations.list_deliveries,
            body.id,
            **body.page(),
        )
    )


@operation(
    "Sends a failed delivery again",
    body=schemas.WebhooksReplay,
    answers={200: schemas.Delivery},
    errors=(404, 503),
)
async def replay(request: Request, body: schemas.WebhooksReplay) -> JSONResponse:
    delivery, lane = await in_database(integrations.replay, body.delivery_id)
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
