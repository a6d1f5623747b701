"""Queue depth and the age of the oldest waiting message, read from Redis when the web is scraped.

Dramatiq's Redis broker keeps a queue as a list of message ids, ``{namespace}:{queue}``, consumed from its
head (``LPOP``), with the messages themselves in the hash ``{namespace}:{queue}.msgs`` (until acked, so the hash
also holds what workers have fetched). A delayed message (a retry's backoff, ``send_with_options(delay=…)``)
waits in ``{queue}.DQ`` and its hash, and is moved to the queue when due, by a worker (see
``dramatiq/brokers/redis/dispatch.lua``). A scrape costs one round trip of ``LLEN``, ``LINDEX 0`` and ``HLEN``
per queue, and one of ``HGET`` for the heads: the oldest message is the head of the list.

A message's age counts from when it was ready to be consumed: :class:`ReadyTime` stamps that on every enqueue
(now, or when a delay ends), since Dramatiq's ``message_timestamp`` is when the message was first sent, before
any delay or retry; the stamp falls back to that for messages enqueued without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dramatiq
import redis
from dramatiq.common import dq_name
from dramatiq.middleware import Middleware
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

READY_AT = "airy_ready_at"
"""The message option holding when it was ready to be consumed (ms since the epoch)."""


class ReadyTime(Middleware):
    """Stamps each message, as it is enqueued, with the time it becomes ready to be consumed."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message, delay: int | None) -> None:
        # The broker encodes this very message once the hooks have run.
        message.options[READY_AT] = int(time.time() * 1000) + (delay or 0)


@dataclass(frozen=True)
class Backlog:
    """One queue's state: messages waiting for a worker, delayed ones, and how long the oldest has waited."""

    depth: int
    delayed: int
    oldest_age_s: float


def read_backlogs(client: redis.Redis, namespace: str, queues: Sequence[str]) -> dict[str, Backlog]:
    """The backlog of each of ``queues``.

    Raises:
      redis.RedisError: when Redis does not answer.
    """
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            waiting = f"{namespace}:{queue}"
            pipe.llen(waiting).lindex(waiting, 0).hlen(f"{namespace}:{dq_name(queue)}.msgs")
        replies = pipe.execute()
    states = {queue: replies[3 * index : 3 * index + 3] for index, queue in enumerate(queues)}
    heads = [(queue, head) for queue, (_, head, _) in states.items() if head is not None]
    with client.pipeline(transaction=False) as pipe:
        for queue, head in heads:
            pipe.hget(f"{namespace}:{queue}.msgs", head)
        encoded = dict(zip([queue for queue, _ in heads], pipe.execute() if heads else [], strict=True))
    now_ms = time.time() * 1000
    return {
        queue: Backlog(depth, delayed, _age_s(encoded.get(queue), now_ms))
        for queue, (depth, _, delayed) in states.items()
    }


def _age_s(encoded: bytes | None, now_ms: float) -> float:
    if encoded is None:  # an empty queue, or its head was taken meanwhile
        return 0.0
    message = dramatiq.Message.decode(encoded)
    ready_at = message.options.get(READY_AT, message.message_timestamp)
    return max(0.0, now_ms - ready_at) / 1000


class QueueCollector:
    """``airy_queue_depth_messages``, ``airy_queue_delayed_messages`` and ``airy_queue_oldest_message_age_seconds``.

    Parameters:
      client, namespace: the broker's Redis and namespace.
      queues: the queues to report.
    """

    def __init__(self, client: redis.Redis, namespace: str, queues: Sequence[str]) -> None:
        self.client = client
        self.namespace = namespace
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        backlogs = read_backlogs(self.client, self.namespace, self.queues)
        depth = GaugeMetricFamily(
            "airy_queue_depth_messages", "Messages waiting in a queue for a worker (not delayed).", labels=["queue"]
        )
        delayed = GaugeMetricFamily(
            "airy_queue_delayed_messages",
            "Messages of a queue delayed until later (retries' backoffs, deferrals).",
            labels=["queue"],
        )
        age = GaugeMetricFamily(
            "airy_queue_oldest_message_age_seconds",
            "How long the oldest message waiting in a queue has been ready to be consumed (0 when none waits).",
            labels=["queue"],
        )
        for queue, backlog in backlogs.items():
            depth.add_metric([queue], backlog.depth)
            delayed.add_metric([queue], backlog.delayed)
            age.add_metric([queue], backlog.oldest_age_s)
        yield from (depth, delayed, age)
