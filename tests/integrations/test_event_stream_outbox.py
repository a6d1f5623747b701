"""The event stream's side of the outbox, on PostgreSQL and SQLite: what is written while a client listens,
how long it is kept, and reading it by position."""

from __future__ import annotations

import pytest

from airy_actors import event_stream, integrations, outbox, stream_listeners
from airy_actors.config import Settings
from airy_actors.db import is_postgres, write_transaction
from airy_actors.errors import BadRequest, ConfigError
from airy_actors.models import Channel
from airy_actors.models.integrations import EventStreamListener, OutboxEvent
from airy_actors.timestamps import now_ms
from tests.support import wait_until
from workers import integrations as workers_integrations

DAY_MS = stream_listeners.STREAM_WINDOW_MS


@pytest.fixture
def channel(any_db) -> Channel:
    stream_listeners.forget_recording()
    outbox.forget_subscriptions()
    yield Channel.create(source_channel_id="1001", name="Acme", page_token="PAGE-TOKEN")
    outbox.forget_subscriptions()


def channel_updated(channel: Channel, times: int = 1) -> None:
    for _ in range(times):
        with write_transaction():
            outbox.channel_updated(channel)


def test_every_type_is_written_while_a_client_listened_within_the_window(channel):
    # Without a subscription or a listener nothing is written
    channel_updated(channel)
    assert OutboxEvent.select().count() == 0
    # A client connects: the first within the window
    assert stream_listeners.record_listener() is True
    assert stream_listeners.record_listener() is False  # at most every few seconds a process, and no longer first
    outbox.forget_subscriptions()
    channel_updated(channel)
    [event] = OutboxEvent.select()
    assert event.type == "channel.updated"
    assert (event.tx > 0) is is_postgres()
    # A day later, nobody listens any more
    EventStreamListener.update(last_connected_at=now_ms() - DAY_MS - 1).execute()
    outbox.forget_subscriptions()
    channel_updated(channel)
    assert OutboxEvent.select().count() == 1


def test_pruning_keeps_events_a_day_for_the_stream(channel):
    stream_listeners.record_listener()
    outbox.forget_subscriptions()
    channel_updated(channel, 3)
    integrations.drain_outbox()  # no subscription: dispatched to nobody
    OutboxEvent.update(dispatched_at=now_ms() - 60_000).execute()
    assert integrations.prune() == 0  # a minute old: kept for stream clients that reconnect
    first = OutboxEvent.select().order_by(OutboxEvent.id).first()
    OutboxEvent.update(timestamp=now_ms() - DAY_MS - 1).where(OutboxEvent.id == first.id).execute()
    assert integrations.prune() == 1


def test_events_are_read_by_position_and_rendered_as_server_sent_events(channel):
    stream_listeners.record_listener()
    outbox.forget_subscriptions()
    assert event_stream.head() == event_stream.START and event_stream.read_after(event_stream.START, 10) is None
    channel_updated(channel, 3)
    events = list(OutboxEvent.select().order_by(OutboxEvent.id))
    # On PostgreSQL, a transaction of another test session on the server may hold the reader back a moment.
    wait_until(lambda: len(event_stream.read_after(event_stream.START, 10) or ()) == 3, message="three events")
    batch = event_stream.read_after(event_stream.START, 2)
    assert [position[1] for position in (batch.first, batch.last)] == [events[0].id, events[1].id]
    rest = event_stream.read_after(batch.last, 10)
    assert len(rest) == 1 and event_stream.head() == rest.last
    assert event_stream.replay(batch.first, rest.last, 10).events == (batch.events[1], rest.events[0])
    frame = batch.events[0].frame.decode()
    assert frame.startswith(f"id: {events[0].id}\nevent: channel.updated\ndata: {{") and frame.endswith("}\n\n")
    assert batch.after(batch.first) == batch.events[1].frame and batch.after(batch.last) == b""
    # A client's Last-Event-ID is a position again; an unknown one resumes at the window's start
    assert event_stream.resume_position(events[1].id) == batch.last
    assert event_stream.resume_position(10**9) == (events[0].tx, events[0].id - 1)


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "１２", "9" * 30])
def test_a_malformed_last_event_id_is_a_bad_request(value):
    with pytest.raises(BadRequest, match="Last-Event-ID"):
        event_stream.parse_last_event_id(value)


def test_a_missing_last_event_id_starts_afresh():
    assert event_stream.parse_last_event_id(None) is None
    assert event_stream.parse_last_event_id(" 42 ") == 42


def test_the_stream_settings_are_read_from_the_environment():
    settings = Settings.from_environ({"AIRY_STREAM_HEARTBEAT_MS": "250", "AIRY_STREAM_BUFFER_EVENTS": "64"})
    assert (settings.stream_heartbeat_ms, settings.stream_buffer_events) == (250, 64)
    assert (Settings().stream_heartbeat_ms, Settings().stream_buffer_events) == (15_000, 10_000)
    for name, value in (("AIRY_STREAM_HEARTBEAT_MS", "soon"), ("AIRY_STREAM_BUFFER_EVENTS", "0")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_environ({name: value})


def test_a_sweep_prunes_batch_after_batch_what_is_due(channel, monkeypatch):
    # Given more events past the window than one batch of the prune holds
    monkeypatch.setattr(workers_integrations, "PRUNE_BATCH", 10)
    stream_listeners.record_listener()
    outbox.forget_subscriptions()
    channel_updated(channel, 35)
    integrations.drain_outbox()
    OutboxEvent.update(dispatched_at=now_ms() - 60_000, timestamp=now_ms() - DAY_MS - 1).execute()
    # When one sweep runs, every due event is gone but the newest (kept: ids are compared against it)
    assert workers_integrations.prune_webhook_history() == 34
    assert OutboxEvent.select().count() == 1
