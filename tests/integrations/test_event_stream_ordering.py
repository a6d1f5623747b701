"""The event stream's ordering guarantees on PostgreSQL: an event whose transaction commits after a later id's
is still delivered, once its transaction has ended; and a conversation's events come in commit order even when
the transaction that committed last took its id first."""

from __future__ import annotations

import threading
import time

from airy_actors import outbox, stream_listeners
from airy_actors.db import database, execute, write_transaction
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


def test_a_conversations_events_keep_commit_order_when_an_older_transaction_commits_later(api, channel: Channel):
    stream_listeners.forget_recording()
    client = SseClient(str(api.base_url)).start()
    try:
        # Given a transaction that took its id first (it wrote something else) and then waits, as one waits on a
        # conversation's row lock
        started, younger_committed = threading.Event(), threading.Event()

        def older_transaction() -> None:
            with database.connection_context(), write_transaction():
                execute("SELECT pg_current_xact_id()")
                started.set()
                assert younger_committed.wait(10)
                outbox.channel_updated(channel)  # the same ordering key, after the younger one committed

        older = threading.Thread(target=older_transaction)
        older.start()
        assert started.wait(10)
        # When a younger transaction writes the key's event and commits first
        with write_transaction():
            outbox.channel_updated(channel)
        younger_committed.set()
        older.join(timeout=10)
        # Then the stream delivers the key's events in commit order, though the older transaction's id is lower
        first, second = OutboxEvent.select().order_by(OutboxEvent.id)
        wait_until(lambda: len(client.events) == 2, message="both events")
        assert client.ids() == [first.id, second.id]
    finally:
        client.close()
