"""Fixtures of the integrator webhook tests: receivers on 127.0.0.1, short timeouts and backoffs, a channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from airy_actors import integrations, outbox
from airy_actors.integrations import DeliveryPolicy
from airy_actors.models import Channel
from tests.fake_graph import FakeGraph
from tests.integrations.calls import PAGE, PAGE_TOKEN
from tests.integrations.receiver import Receiver

# Attempts time out after a second and back off from 50 ms to half a second, so that a test sees many of them.
FAST = DeliveryPolicy(
    connect_timeout_ms=1_000, timeout_ms=1_000, min_backoff_ms=50, max_backoff_ms=500, lease_ms=10_000
)


@pytest.fixture(autouse=True)
def fast_deliveries() -> Iterator[DeliveryPolicy]:
    integrations.use_delivery_policy(FAST)
    outbox.forget_subscriptions()
    yield FAST
    integrations.use_delivery_policy(DeliveryPolicy())
    outbox.forget_subscriptions()


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """Starts receivers on demand; all are stopped after the test."""
    started: list[Receiver] = []

    def start() -> Receiver:
        receiver = Receiver().start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def receiver(receivers: Callable[[], Receiver]) -> Receiver:
    return receivers()


@pytest.fixture
def channel(db, fake_graph: FakeGraph) -> Channel:
    """A connected page, created directly in the database."""
    fake_graph.add_page(PAGE, "Acme", token=PAGE_TOKEN)
    return Channel.create(source_channel_id=PAGE, name="Acme", page_token=PAGE_TOKEN)
