"""Redis restarted, empty, while Facebook delivers a stream of batches.

Redis only carries the news: the web stores a request before it answers 200, and when it cannot enqueue it
the sweeper does, from the database, once Redis is back.
"""

from __future__ import annotations

import time

from tests.faults.outcome import (
    assert_each_event_is_one_message,
    assert_requests_stored_once_and_processed,
    wait_for_messages,
)
from tests.faults.stream import WebhookStream, make_batches

RECOVERY_TIMEOUT_S = 90.0
REDIS_DOWN_S = 4.0


def test_every_accepted_event_is_one_message_after_redis_restarts_empty(channel, process_env, private_redis, processes):
    # Given the web and a worker on a Redis server of their own, and a stream of 100 batches over about 12 s
    env = {**process_env, "REDIS_URL": private_redis.url}
    web = processes("web", env)
    processes("worker", env, processes=1, threads=4)
    batches = make_batches(channel.source_channel_id, count=100, events_per_batch=5, contacts=40, tag="redis")
    stream = WebhookStream(web.url, batches, rate=8.0, senders=4).start()

    # When Redis crashes mid-stream, stays down for a few seconds, and starts again with nothing in it
    time.sleep(3.0)
    answered_before = stream.sent
    private_redis.crash()
    time.sleep(REDIS_DOWN_S)
    answered_while_down = stream.sent - answered_before
    private_redis.start()
    assert stream.running, "Redis must come back before the stream ends"
    stream.finish(timeout=120)

    # Then the web kept accepting while Redis was down, and every batch was accepted without a server error
    assert answered_while_down > 0
    assert stream.unanswered() == []
    outcomes = stream.outcomes()
    assert set(outcomes) == {"200"}, outcomes
    # And every accepted event becomes exactly one message
    mids = stream.answered_mids()
    wait_for_messages(len(mids), timeout=RECOVERY_TIMEOUT_S)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])
