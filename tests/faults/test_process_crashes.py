"""Web and worker processes SIGKILLed at random points while Facebook delivers a stream of batches.

Recovery takes real time: the Redis broker gives a dead worker's unacked messages back after its heartbeat
timeout (15 s), and the sweeper (every 10 s) enqueues stored requests that are still unprocessed after
30 s. The waits allow for both, and end as soon as the work is done.
"""

from __future__ import annotations

import os
import random
import time

from tests.faults.outcome import (
    assert_each_event_is_one_message,
    assert_requests_stored_once_and_processed,
    wait_for_messages,
)
from tests.faults.stream import WebhookStream, make_batches

RECOVERY_TIMEOUT_S = 90.0


def test_every_accepted_event_is_one_message_after_web_and_worker_crashes(channel, process_env, processes):
    # Given the web and a worker, and Facebook delivering 160 batches of 5 messages over about 20 s
    seed = int(os.environ.get("AIRY_FAULT_SEED", random.randrange(1_000_000)))
    chance = random.Random(seed)
    print(f"AIRY_FAULT_SEED={seed}")
    web = processes("web", process_env)
    worker = processes("worker", process_env, processes=1, threads=4)
    batches = make_batches(channel.source_channel_id, count=160, events_per_batch=5, contacts=40, tag="crash")
    stream = WebhookStream(web.url, batches, rate=8.0, senders=4).start()

    # When each process is SIGKILLed three times at random moments of the stream, and started again
    victims = [web, worker] * 3
    chance.shuffle(victims)
    crashed_while_streaming = 0
    for victim in victims:
        time.sleep(chance.uniform(0.3, 2.5))
        crashed_while_streaming += stream.running
        victim.crash()
        time.sleep(chance.uniform(0.0, 1.0))
        victim.start()
    assert crashed_while_streaming >= 4, "the crashes must fall inside the stream"
    stream.finish(timeout=120)

    # Then every batch was eventually accepted, never with a server error
    assert stream.unanswered() == []
    outcomes = stream.outcomes()
    assert {outcome for outcome in outcomes if outcome.startswith("5")} <= {"503"}, outcomes
    # And every accepted event becomes exactly one message
    mids = stream.answered_mids()
    wait_for_messages(len(mids), timeout=RECOVERY_TIMEOUT_S)
    assert_each_event_is_one_message(mids)
    assert_requests_stored_once_and_processed([batch.body for batch in batches])
