"""``GET /events.stream``: the integrator events of SPEC section 6 as Server-Sent Events, as they happen.

Each event is ``id: <outbox id>``, ``event: <type>`` and ``data: {"type", "payload", "timestamp"}`` (the body a
webhook subscriber receives). A client reconnecting with ``Last-Event-ID`` first receives what it missed, in
order, nothing twice: what the database keeps past that event within the last 24 hours (from the start of those
24 hours when the event is unknown, pruned or older), then the live events. A comment line every
``AIRY_STREAM_HEARTBEAT_MS`` of silence keeps proxies from closing the connection. A client whose buffer fills
(``AIRY_STREAM_BUFFER_EVENTS``) is disconnected.

A plain ASGI response rather than sse-starlette's ``EventSourceResponse``: the hub renders each event once and
hands every client the same bytes, a batch per write, which sse-starlette would encode again per client and per
event; the bound on a slow reader is the hub's buffer, not a send timeout; and the disconnection of a slow
client must cancel a write blocked on a full socket, which this response does with its own cancel scope.
"""

from __future__ import annotations

import asyncio
import logging

import anyio
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from airy_actors import event_stream, outbox, stream_listeners
from airy_actors.event_stream import Position
from api.database import in_database
from api.event_hub import EventHub, StreamClient
from api.http_server import ABORT_EXTENSION
from api.operations import Operation, Text, documented

logger = logging.getLogger(__name__)

REPLAY_PAGE = 1_000
HEARTBEAT = b": heartbeat\n\n"
OPENING = b": connected\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]


class EventStreamResponse:
    """Streams the events past ``resume`` (None: only those to come) to one client.

    Parameters:
      hub: this process's event hub.
      resume: the position after the client's ``Last-Event-ID``; None for a client that starts afresh.
      heartbeat_s: the silence after which a comment line is written.
    """

    def __init__(self, hub: EventHub, resume: Position | None, heartbeat_s: float) -> None:
        self.hub = hub
        self.resume = resume
        self.heartbeat_s = heartbeat_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client, registered_at = self.hub.register()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": OPENING, "more_body": True})
            async with anyio.create_task_group() as group:
                client.on_drop = group.cancel_scope.cancel
                group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
                await self._stream(client, registered_at, send)
        finally:
            self.hub.unregister(client)
        # Only a disconnection ends the stream: the client is gone, or was dropped for reading too slowly. A dropped
        # client's socket may be full for good: the server closes it after this returns, once what it holds is
        # read, unless it offers to abort the connection now.
        abort = scope.get("extensions", {}).get(ABORT_EXTENSION)
        if client.dropped and abort is not None:
            abort["abort"]()

    async def _stream(self, client: StreamClient, registered_at: Position, send: Send) -> None:
        position = registered_at
        if self.resume is not None and self.resume < registered_at:
            position = self.resume
            while position < registered_at:
                batch = await in_database(event_stream.replay, position, registered_at, REPLAY_PAGE)
                if batch is None:
                    break
                await send({"type": "http.response.body", "body": batch.data, "more_body": True})
                position = batch.last
            position = registered_at
        elif self.resume is not None:
            position = self.resume  # ahead of this process's reader (it read another process's events)
        while not client.dropped:
            try:
                async with asyncio.timeout(self.heartbeat_s):
                    await client.wakeup.wait()
            except TimeoutError:
                await send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
                continue
            # One write a batch, of the bytes the hub rendered for every client: a client that reads slowly holds
            # one batch in its socket's buffer at a time, and the others wait, shared, in its bounded buffer.
            while (batch := client.take()) is not None:
                data = batch.after(position)
                position = max(position, batch.last)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


@documented(
    Operation(
        "The integrator events as Server-Sent Events, as they happen",
        answers={200: Text("text/event-stream")},
        errors=(400,),
        parameters=(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The id of the last event received: what followed it within 24 hours is sent first.",
            },
        ),
        description="Each event is `id: <outbox id>`, `event: <type>`, `data: {type, payload, timestamp}`; a "
        "comment line keeps an idle stream open; a client that reads too slowly is disconnected.",
    )
)
async def events_stream(request: Request) -> EventStreamResponse:
    """Checks ``Last-Event-ID`` (400 when malformed), records the listener, and answers with the stream."""
    last_event_id = event_stream.parse_last_event_id(request.headers.get("last-event-id"))
    first_listener = await in_database(stream_listeners.record_listener)
    if first_listener:
        # Until every process's cached answer expires, some may still write only the subscribed types.
        outbox.forget_subscriptions()
        await asyncio.sleep(outbox.SUBSCRIPTIONS_CACHE_MS / 1000)
    resume = None if last_event_id is None else await in_database(event_stream.resume_position, last_event_id)
    hub: EventHub = request.app.state.event_hub
    await hub.ready()
    settings = request.app.state.settings
    return EventStreamResponse(hub, resume, settings.stream_heartbeat_ms / 1000)


ROUTES: list[Route] = [Route("/events.stream", events_stream, methods=["GET"])]
