"""The event stream's ordering guarantee on PostgreSQL: an event whose transaction commits after a later id's
is still delivered, in the order of the transactions, once its transaction has ended."""

from __future__ import annotations

import threading
import time

from airy_actors import outbox, stream_listeners
from airy_actors.db import database, write_transaction
from airy_actors.models import Channel
from airy_actors.models.integrations import OutboxEvent
from tests.integrations.sse_client import SseClient
from tests.support import wait_until


def test_an_event_that_commits_after_a_later_id_is_not_skipped(api, channel: Channel):
    stream_listeners.forget_recording()
    client = SseClient(str(api.base_url)).start()  # a client connected: every event type is written
    try:
        # Given a transaction that wrote an event (the lower id) and has not committed
        written, commit = threading.Event(), threading.Event()

        def slow_transaction() -> None:
            with database.connection_context(), write_transaction():
                outbox.channel_updated(channel)
                written.set()
                assert commit.wait(10)

        slow = threading.Thread(target=slow_transaction)
        slow.start()
        assert written.wait(10)
        # When a later transaction writes an event (a higher id) and commits first
        with write_transaction():
            outbox.channel_updated(channel)
        [later] = OutboxEvent.select()  # all that is committed: a reader of "id > last" would move past it now
        time.sleep(0.5)  # five of the hub's polls
        # Then the stream holds it back while the earlier transaction runs
        assert client.events == []
        # And once that one commits, delivers both, the earlier transaction's first
        commit.set()
        slow.join(timeout=10)
        earlier = OutboxEvent.get(OutboxEvent.id != later.id)
        assert earlier.id < later.id and earlier.tx < later.tx
        wait_until(lambda: len(client.events) == 2, message="both events")
        assert client.ids() == [earlier.id, later.id]
    finally:
        client.close()
