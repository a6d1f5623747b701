"""Counters moved by the domain where an outcome is decided, without a server: integrator deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from airy_actors import integrations, outbox
from airy_actors.integrations import Lane
from airy_actors.models.integrations import OutboxEvent, WebhookSubscription


def deliveries(outcome: str) -> float:
    return REGISTRY.get_sample_value("airy_integrator_deliveries_total", {"outcome": outcome}) or 0.0


@pytest.fixture
def subscription(db) -> Iterator[WebhookSubscription]:
    outbox.forget_subscriptions()
    created = integrations.subscribe("http://receiver.test/hook", headers=None, events=None, signature_key="k")
    yield WebhookSubscription.get_by_id(created["id"])
    outbox.forget_subscriptions()


def answering(statuses: dict[int, int]) -> httpx.Client:
    """A client whose receiver answers event ``n`` with ``statuses[n]``."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses[json.loads(request.content)["payload"]["n"]])

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_each_attempt_counts_as_delivered_failed_or_retried(subscription):
    # Given five events of one conversation
    for number in range(5):
        OutboxEvent.create(type="channel.updated", ordering_key="c1", payload={"n": number})
    integrations.drain_outbox()
    before = {outcome: deliveries(outcome) for outcome in ("delivered", "failed", "retried")}
    # When the receiver takes two, refuses one for good, takes one more, then answers 503
    integrations.run_lane(Lane(subscription.id, "c1"), client=answering({0: 200, 1: 200, 2: 410, 3: 200, 4: 503}))
    # Then each attempt counted under its outcome
    grew = {outcome: deliveries(outcome) - before[outcome] for outcome in before}
    assert grew == {"delivered": 3, "failed": 1, "retried": 1}
