"""Lanes without a server, on PostgreSQL and SQLite: order, the breaker, giving up, and upkeep.

The receiver here is an ``httpx.MockTransport``; the tests of ``test_webhook_delivery.py`` use a real one.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from airy_actors import integrations
from airy_actors.db import database
from airy_actors.integrations import Lane, lanes
from airy_actors.models.integrations import OutboxEvent, WebhookDelivery, WebhookSubscription
from airy_actors.timestamps import now_ms
from tests.pool import taken_elsewhere


@pytest.fixture
def subscription(any_db) -> WebhookSubscription:
    created = integrations.subscribe("http://receiver.test/hook", headers=None, events=None, signature_key="k")
    return WebhookSubscription.get_by_id(created["id"])


def emit(key: str, count: int) -> None:
    for number in range(count):
        OutboxEvent.create(type="channel.updated", ordering_key=key, payload={"key": key, "n": number})
    integrations.drain_outbox()


def client(answer: Callable[[dict], int], seen: list[dict]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        document = json.loads(request.content)
        seen.append(document["payload"])
        return httpx.Response(answer(document["payload"]))

    return httpx.Client(transport=httpx.MockTransport(handle))


def statuses() -> list[str]:
    return [d.status for d in WebhookDelivery.select().order_by(WebhookDelivery.event_id)]


def test_a_lane_sends_in_event_order_and_stops_at_the_first_retryable_failure(subscription):
    emit("c1", 4)
    seen: list[dict] = []
    run = integrations.run_lane(Lane(subscription.id, "c1"), client=client(lambda p: 503 if p["n"] == 2 else 200, seen))
    assert [p["n"] for p in seen] == [0, 1, 2]
    assert statuses() == ["delivered", "delivered", "pending", "pending"]
    assert run.sent == 2 and run.retry_in_ms is not None
    # The subscription is paused: a second run sends nothing until the pause is over.
    again = integrations.run_lane(Lane(subscription.id, "c1"), client=client(lambda p: 200, seen))
    assert again.sent == 0 and len(seen) == 3


def test_a_refused_delivery_fails_at_once_and_the_lane_moves_on(subscription):
    emit("c1", 2)
    seen: list[dict] = []
    run = integrations.run_lane(Lane(subscription.id, "c1"), client=client(lambda p: 410 if p["n"] == 0 else 200, seen))
    assert statuses() == ["failed", "delivered"] and run.retry_in_ms is None
    failed = WebhookDelivery.get(WebhookDelivery.status == "failed")
    assert (failed.http_status, failed.attempts) == (410, 1)


def test_a_probe_success_wakes_the_lanes_that_waited(subscription):
    emit("c1", 1)
    emit("c2", 1)
    WebhookSubscription.update(consecutive_failures=3, paused_until=0).execute()
    run = integrations.run_lane(Lane(subscription.id, "c1"), client=client(lambda p: 200, []))
    assert run.wake == [Lane(subscription.id, "c2")]
    assert WebhookSubscription.get().consecutive_failures == 0


def test_only_one_lane_probes_a_paused_subscriber(subscription):
    emit("c1", 1)
    emit("c2", 1)
    WebhookSubscription.update(consecutive_failures=1, paused_until=0).execute()
    assert lanes._take_probe(WebhookSubscription.get()) is True
    seen: list[dict] = []
    run = integrations.run_lane(Lane(subscription.id, "c2"), client=client(lambda p: 200, seen))
    assert seen == [] and run.sent == 0


def test_a_late_failure_from_before_the_breaker_opened_does_not_cut_a_probes_lease(subscription):
    # Given a lane whose attempt went out while the breaker was closed, and, meanwhile, another lane's probe
    emit("c1", 1)
    emit("c2", 1)
    before = WebhookSubscription.get()  # what the first lane's run read: no failure yet
    WebhookSubscription.update(consecutive_failures=1, paused_until=0).execute()
    assert lanes._take_probe(WebhookSubscription.get()) is True
    leased_until = WebhookSubscription.get().paused_until
    # When the first lane's attempt fails
    delivery = WebhookDelivery.get(WebhookDelivery.ordering_key == "c1")
    lanes._record(delivery, before, integrations.Attempt(None, "timed out", retryable=True))
    # Then the probe keeps its lease (no second probe can start) and both failures count
    after = WebhookSubscription.get()
    assert after.paused_until == leased_until and after.consecutive_failures == 2


def test_overdue_deliveries_of_a_failing_subscriber_are_given_up(subscription):
    emit("c1", 2)
    WebhookDelivery.update(give_up_at=now_ms() - 1).execute()
    assert integrations.give_up_overdue() == 0  # the subscriber is healthy: they will be sent
    WebhookSubscription.update(consecutive_failures=5).execute()
    assert integrations.give_up_overdue() == 2
    assert statuses() == ["failed", "failed"]


def test_pruning_keeps_pending_work_and_the_newest_event(subscription):
    emit("c1", 3)
    integrations.run_lane(Lane(subscription.id, "c1"), client=client(lambda p: 200, []))
    emit("c2", 1)
    newest = OutboxEvent.create(type="channel.updated", ordering_key="c3", payload={}, dispatched_at=now_ms())
    old = now_ms() - integrations.delivery_policy().retention_ms - 1
    WebhookDelivery.update(updated_at=old).execute()
    OutboxEvent.update(dispatched_at=old, timestamp=old).execute()
    # The three delivered deliveries go, with their events; the pending one stays, and so does the newest event.
    assert integrations.prune() == 6
    assert statuses() == ["pending"]
    pending = WebhookDelivery.get()
    assert [e.id for e in OutboxEvent.select().order_by(OutboxEvent.id)] == [pending.event_id, newest.id]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("120", 120_000), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0)],
)
def test_retry_after_is_read_in_seconds_or_as_a_date(any_db, value, expected):
    assert integrations.parse_retry_after(value) == expected


def test_backoff_grows_with_jitter_and_honours_retry_after_up_to_a_cap(any_db):
    policy = integrations.delivery_policy()
    assert policy.min_backoff_ms // 2 <= integrations.backoff_ms(1) <= policy.min_backoff_ms
    assert integrations.backoff_ms(100) <= policy.max_backoff_ms
    assert integrations.backoff_ms(1, retry_after_ms=30_000) >= 30_000
    assert integrations.backoff_ms(1, retry_after_ms=10**12) == policy.max_retry_after_ms


@pytest.mark.usefixtures("one_connection")
@pytest.mark.parametrize("released", [True, False], ids=["as-the-actor-runs-it", "holding-the-connection"])
def test_a_lane_holds_no_database_connection_while_the_subscriber_answers(db, released):
    created = integrations.subscribe("http://receiver.test/hook", headers=None, events=None, signature_key="k")
    emit("c1", 1)
    database.close()
    taken_during_post: list[bool] = []

    def answer(payload: dict) -> int:
        taken_during_post.append(taken_elsewhere())
        return 200

    lane = Lane(created["id"], "c1")
    try:
        run = integrations.run_lane(lane, client=client(answer, []), release_connection=released)
    finally:
        database.close()
    assert run.sent == 1
    # The actor's run hands its connection back for the POST: another thread of the worker can use it.
    assert taken_during_post == [not released]
