"""Integrator webhooks: ``webhooks.subscribe|unsubscribe|info|list|deliveries|replay``."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.routing import Route

from airy_actors import integrations, outbox
from api import answer_schemas, schemas
from api.database import in_database
from api.operations import operation
from api.responses import JSONResponse
from workers.integrations import start_lane


@operation(
    "Subscribe a URL to the integrator events",
    body=schemas.WebhooksSubscribe,
    answers={200: answer_schemas.Subscription},
    description="Private, loopback and link-local targets are refused unless AIRY_WEBHOOKS_ALLOW_PRIVATE=true.",
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
    "Delete a subscription with its deliveries",
    body=schemas.SubscriptionRef,
    answers={200: answer_schemas.Subscription},
    errors=(404,),
)
async def unsubscribe(request: Request, body: schemas.SubscriptionRef) -> JSONResponse:
    return JSONResponse(await in_database(integrations.unsubscribe, body.id))


@operation("A subscription", body=schemas.SubscriptionRef, answers={200: answer_schemas.Subscription}, errors=(404,))
async def info(request: Request, body: schemas.SubscriptionRef) -> JSONResponse:
    return JSONResponse(await in_database(integrations.subscription_info, body.id))


@operation("Every subscription", body=schemas.Nothing, answers={200: answer_schemas.SubscriptionList})
async def list_(request: Request, body: schemas.Nothing) -> JSONResponse:
    return JSONResponse(await in_database(integrations.list_subscriptions))


@operation(
    "A subscription's deliveries, newest first",
    body=schemas.WebhooksDeliveries,
    answers={200: answer_schemas.DeliveryPage},
    errors=(404,),
)
async def deliveries(request: Request, body: schemas.WebhooksDeliveries) -> JSONResponse:
    return JSONResponse(await in_database(integrations.list_deliveries, body.id, **body.page()))


@operation(
    "Deliver a failed delivery again, with a fresh day of retries",
    body=schemas.WebhooksReplay,
    answers={200: answer_schemas.Delivery},
    errors=(404,),
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
