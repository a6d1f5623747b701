"""Worker heartbeats in Redis, and ``GET /health`` naming the queues that no live worker serves."""

from __future__ import annotations

import json
import os
import socket

import dramatiq
import pytest

from workers import queues
from workers.heartbeat import HEARTBEAT_TTL_MS, Heartbeat, heartbeat_key, index_key, workers_by_queue

EVERY_QUEUE = ", ".join(queues.ALL)


@pytest.fixture
def webhooks_worker(broker: dramatiq.Broker, db):
    """A Dramatiq worker in this process that consumes the ``webhooks`` queue only."""
    running = dramatiq.Worker(broker, queues={queues.DELIVERIES}, worker_threads=1, worker_timeout=50)
    running.start()
    yield running
    running.stop(timeout=10_000)


def test_a_booted_worker_beats_a_heartbeat_naming_its_queues(broker, webhooks_worker):
    key = heartbeat_key(broker.namespace, socket.gethostname(), os.getpid())
    assert json.loads(broker.client.get(key))["queues"] == [queues.DELIVERIES]
    assert 0 < broker.client.pttl(key) <= HEARTBEAT_TTL_MS
    assert workers_by_queue(broker.client, broker.namespace) == {queues.DELIVERIES: 1}


def test_a_worker_that_stops_takes_its_heartbeat_away(broker, db):
    running = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    running.start()
    assert workers_by_queue(broker.client, broker.namespace) == {queue: 1 for queue in queues.ALL}
    running.stop(timeout=10_000)
    assert workers_by_queue(broker.client, broker.namespace) == {}
    # Its key and its entry in the index are gone (entries of workers killed by earlier tests stay until pruned)
    key = heartbeat_key(broker.namespace, socket.gethostname(), os.getpid())
    assert broker.client.exists(key) == 0
    assert broker.client.zscore(index_key(broker.namespace), key) is None


def test_an_expired_heartbeat_counts_for_nothing_and_a_long_dead_one_is_pruned(broker):
    # Given a heartbeat whose key expired (its worker died), and an index entry of a worker dead long ago
    heartbeat = Heartbeat(broker.client, broker.namespace, hostname="dead-host", pid=1)
    heartbeat.announce([queues.SENDING])
    heartbeat.beat()
    broker.client.delete(heartbeat.key)
    ancient = heartbeat_key(broker.namespace, "dead-host", 2)
    broker.client.zadd(index_key(broker.namespace), {ancient: 1_000})
    try:
        # Then neither serves a queue
        assert workers_by_queue(broker.client, broker.namespace) == {}
        # And the next beat of any worker prunes the ancient entry
        heartbeat.beat()
        assert broker.client.zscore(index_key(broker.namespace), ancient) is None
    finally:
        broker.client.delete(heartbeat.key, index_key(broker.namespace))


def test_health_names_every_queue_when_no_worker_is_alive(api):
    answer = api.get("/health")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "message": f"no live worker serves: {EVERY_QUEUE}",
        "database": "ok",
        "broker": "ok",
        "spool": {"bytes": 0, "spooling": False},
        "queues": {queue: 0 for queue in queues.ALL},
    }


def test_health_names_the_queues_that_a_partial_worker_leaves_unserved(api, webhooks_worker):
    answer = api.get("/health")
    assert answer.status_code == 503
    unserved = ", ".join(queue for queue in queues.ALL if queue != queues.DELIVERIES)
    assert answer.json()["message"] == f"no live worker serves: {unserved}"
    assert answer.json()["queues"][queues.DELIVERIES] == 1


def test_health_is_ok_when_a_live_worker_serves_every_queue(api, worker):
    answer = api.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "spool": {"bytes": 0, "spooling": False},
        "queues": {queue: 1 for queue in queues.ALL},
    }
