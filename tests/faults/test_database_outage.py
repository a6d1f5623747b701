"""PostgreSQL unreachable while Facebook delivers a stream of batches: the webhook spools, then drains.

The product's processes reach PostgreSQL through a proxy that the test cuts: open connections are reset and
new ones refused, as when the database host goes away. Facebook retries what is not answered 200. The test
itself reads PostgreSQL directly.
"""

from __future__ import annotations

import time

import httpx

from airy_actors.models import WebhookRequest
from tests.faults.conftest import through
from tests.faults.outcome import (
    assert_each_event_is_one_message,
    assert_requests_stored_once_and_processed,
    message_count,
    wait_for_messages,
)
from tests.faults.stream import WebhookStream, make_batches
from tests.support import wait_until

RECOVERY_TIMEOUT_S = 90.0
DATABASE_DOWN_S = 4.0
SPOOLED_OUTAGE_S = 15.0
SPOOL_RATE = 30.0  # requests a second
SETTLE_S = 1.0  # for answers and commits already under way when the database went away


def test_webhook_keeps_answering_200_while_the_database_is_away_and_every_event_arrives_once(
    channel, process_env, postgres_proxy, processes
):
    # Given the web and a worker that reach PostgreSQL through a proxy, and a stream of batches
    env = {**process_env, "DATABASE_URL": through(postgres_proxy, process_env["DATABASE_URL"])}
    web = processes("web", env)
    processes("worker", env, processes=1, threads=4)
    batches = make_batches(channel.source_channel_id, count=600, events_per_batch=5, contacts=40, tag="pg")
    stream = WebhookStream(web.url, batches, rate=SPOOL_RATE, senders=8).start()

    # When the database goes away mid-stream, then comes back
    time.sleep(2.0)
    assert postgres_proxy.open_connections > 0, "the processes must be using the proxy"
    postgres_proxy.cut()
    answered_before = stream.sent
    time.sleep(SPOOLED_OUTAGE_S)
    answered_while_down = stream.sent - answered_before
    health_while_down = httpx.get(f"{web.url}/health", timeout=5).json()
    postgres_proxy.restore()
    assert stream.running, "the database must come back before the stream ends"
    stream.finish(timeout=120)

    # Then Facebook never saw anything but 200: what arrived meanwhile was spooled, and /health said so
    assert set(stream.outcomes()) == {"200"}, stream.outcomes()
    assert answered_while_down > SPOOL_RATE  # it kept accepting: more than a second's worth while the database was away
    assert health_while_down["spool"]["spooling"] is True and health_while_down["spool"]["bytes"] > 0
    # And every accepted event is exactly one message; no request is stored twice or left unprocessed
    mids = stream.answered_mids()
    wait_for_messages(len(mids), timeout=RECOVERY_TIMEOUT_S)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])
    wait_until(lambda: httpx.get(f"{web.url}/health", timeout=5).json()["spool"]["bytes"] == 0, timeout=10)


def test_a_web_killed_while_it_drains_its_spool_loses_and_doubles_nothing(
    channel, process_env, postgres_proxy, processes
):
    # Given a web that spooled a few hundred requests while its database was away
    env = {**process_env, "DATABASE_URL": through(postgres_proxy, process_env["DATABASE_URL"])}
    web = processes("web", env)
    # (enough that the drain takes a while, for the crash to land in it)
    batches = make_batches(channel.source_channel_id, count=800, events_per_batch=5, contacts=40, tag="drain")
    wait_until(lambda: httpx.get(f"{web.url}/health", timeout=5).json()["database"] == "ok", timeout=10)
    postgres_proxy.cut()
    stream = WebhookStream(web.url, batches, rate=200.0, senders=8).start()
    stream.finish(timeout=120)
    assert set(stream.outcomes()) == {"200"}, stream.outcomes()
    # When the database comes back and the web is killed while it moves the spool into the database
    postgres_proxy.restore()
    wait_until(lambda: 0 < stored_requests() < len(batches), timeout=30, interval=0.002, message="no drain began")
    web.crash()
    partly = stored_requests()
    # And a web starts again, with a worker
    web.start()
    processes("worker", env, processes=1, threads=4)
    # Then the drain resumes where it was cut, and every event is one message, every request stored once
    mids = stream.answered_mids()
    wait_for_messages(len(mids), timeout=RECOVERY_TIMEOUT_S)
    assert partly < len(batches)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])


def stored_requests() -> int:
    return WebhookRequest.select().count()


def test_worker_catches_up_after_losing_its_database_while_the_web_accepts(
    channel, process_env, postgres_proxy, processes
):
    # Given the web on PostgreSQL, a worker that reaches it through a proxy, and a stream of 100 batches
    web = processes("web", process_env)
    worker_env = {**process_env, "DATABASE_URL": through(postgres_proxy, process_env["DATABASE_URL"])}
    processes("worker", worker_env, processes=1, threads=4)
    batches = make_batches(channel.source_channel_id, count=100, events_per_batch=5, contacts=40, tag="pgw")
    stream = WebhookStream(web.url, batches, rate=8.0, senders=4).start()

    # When the worker's database goes away mid-stream for a few seconds, then comes back
    time.sleep(3.0)
    assert postgres_proxy.open_connections > 0, "the worker must be using the proxy"
    postgres_proxy.cut()
    time.sleep(SETTLE_S)
    answered_before, stored_before = stream.sent, message_count()
    time.sleep(DATABASE_DOWN_S - SETTLE_S)
    answered_while_down, stored_while_down = stream.sent - answered_before, message_count() - stored_before
    postgres_proxy.restore()
    stream.finish(timeout=120)

    # Then the web kept accepting, and no message was stored while the worker could not reach the database
    assert set(stream.outcomes()) == {"200"}, stream.outcomes()
    assert (answered_while_down > 0, stored_while_down) == (True, 0)
    # And the worker was not stuck: every accepted event became exactly one message
    mids = stream.answered_mids()
    wait_for_messages(len(mids), timeout=RECOVERY_TIMEOUT_S)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])
