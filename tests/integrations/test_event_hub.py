"""The event hub on its own: a client that registers while an idle hub follows the outbox's head misses nothing."""

from __future__ import annotations

import asyncio
import threading

import peewee

from airy_actors import event_stream
from airy_actors.db import database, write_transaction
from airy_actors.models.integrations import OutboxEvent
from airy_actors.timestamps import now_ms
from api.event_hub import EventHub


def write_event() -> int:
    with database.connection_context(), write_transaction():
        return OutboxEvent.insert(
            type="channel.updated",
            ordering_key="c1",
            payload={},
            timestamp=now_ms(),
            tx=peewee.SQL("pg_current_xact_id()::text::bigint"),
        ).execute()


def test_a_client_registering_while_an_idle_hub_reads_the_head_gets_what_came_meanwhile(db, monkeypatch):
    real_head = event_stream.head
    entered, release = threading.Event(), threading.Event()

    def slow_head() -> event_stream.Position:
        entered.set()
        assert release.wait(5)
        return real_head()

    async def scenario() -> list[int]:
        hub = EventHub(buffer_events=100)
        hub.start()
        try:
            await hub.ready()
            # Given an idle hub (no client) inside its read of the outbox's head
            monkeypatch.setattr(event_stream, "head", slow_head)
            assert await asyncio.to_thread(entered.wait, 5)
            # When an event commits, a client registers, and then the head's read (which sees the event) ends
            await asyncio.to_thread(write_event)
            client, _ = hub.register()
            release.set()
            # Then the client gets the event: the hub reads on from where the client registered
            async with asyncio.timeout(5):
                while not client.batches:
                    await client.wakeup.wait()
            batch = client.take()
            return [event.position[1] for event in batch.events]
        finally:
            release.set()
            await hub.stop()

    event_ids = asyncio.run(scenario())
    assert event_ids == [OutboxEvent.get().id]
