"""The Dramatiq queues, one per concern: the one list that actors, ``airy-actors worker --queues`` and
``GET /health`` share.

Each concern has a queue of its own so that a flood or a stall in one leaves the others on time, and so that
a deployment can give each its own processes, threads and time limits (see the Procfile).
"""

from __future__ import annotations

INGESTION = "ingestion"
"""Stored webhook requests becoming messages."""
PROFILES = "profiles"
"""Fetching new contacts' names and pictures from Facebook."""
SENDING = "sending"
"""Outbound messages through the Send API."""
CHANNELS = "channels"
"""Connecting, exploring and disconnecting pages (jobs a client may be waiting on)."""
EXPLORE = "explore"
"""The pages an explore fans out, behind the channel jobs."""
HEALTH = "health"
"""Periodic checks of the channels' tokens and subscriptions."""
MEDIA = "media"
"""Inbound attachments fetched into the media store."""
DELIVERIES = "deliveries"
"""Deliveries to integrators' webhooks."""
MAINTENANCE = "maintenance"
"""The sweeper, which re-enqueues work a crash left behind."""

WAITING_ON_OTHERS: tuple[str, ...] = (MEDIA, DELIVERIES)
"""Queues whose work waits on servers we do not run (CDNs, integrators' receivers): ``serve`` gives them threads
of their own, so that a slow or stalled one never takes the threads of ingestion and sending."""

ALL: tuple[str, ...] = (INGESTION, PROFILES, SENDING, CHANNELS, EXPLORE, HEALTH, MEDIA, DELIVERIES, MAINTENANCE)
"""Every queue, in the order they are listed to operators."""


class UnknownQueue(ValueError):
    """A queue name that no actor uses."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown queue {name!r}; the queues are: {', '.join(ALL)}")
        self.name = name


def parse_queues(text: str) -> tuple[str, ...]:
    """The queue names of a comma-separated list (``"ingestion,sending"``), in order and without repeats.

    Raises:
      UnknownQueue: naming the first name that is not a queue of :data:`ALL`.
      ValueError: when the list names no queue at all.
    """
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise ValueError(f"name at least one queue; the queues are: {', '.join(ALL)}")
    for name in names:
        if name not in ALL:
            raise UnknownQueue(name)
    return names
