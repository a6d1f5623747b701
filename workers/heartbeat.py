"""Worker heartbeats: which queues a live worker process consumes, for ``GET /health`` to read.

Every worker process writes ``{namespace}:heartbeat:{hostname}:{pid}`` (the queues it consumes, as JSON)
with a time to live of a few seconds, and refreshes it every second; a process that dies, however it dies,
drops out when its key expires. The keys are also listed in a sorted set scored by Redis's clock, so that a
reader finds them with one ZRANGE and one MGET, never by scanning the keyspace. Each beat prunes the
entries that stopped beating long ago.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import Counter

import dramatiq
import redis
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

BEAT_INTERVAL_S = 1.0
HEARTBEAT_TTL_MS = 5_000
"""How long a heartbeat outlives its last beat: a dead worker's queues count as unserved after this."""
INDEX_RETENTION_S = 60
"""Entries of the index whose worker has not beaten for this long are pruned (their keys expired long ago)."""


def heartbeat_key(namespace: str, hostname: str, pid: int) -> str:
    return f"{namespace}:heartbeat:{hostname}:{pid}"


def index_key(namespace: str) -> str:
    return f"{namespace}:heartbeat-index"


def workers_by_queue(client: redis.Redis, namespace: str) -> Counter[str]:
    """How many live worker processes consume each queue (queues that none consumes are absent).

    Raises:
      redis.RedisError: when Redis does not answer.
    """
    keys = client.zrange(index_key(namespace), 0, -1)
    counts: Counter[str] = Counter()
    if not keys:
        return counts
    for value in client.mget(keys):
        if value is not None:  # expired: that worker stopped beating
            counts.update(json.loads(value)["queues"])
    return counts


class Heartbeat(Middleware):
    """Beats a heartbeat from every worker process, naming the queues it consumes.

    Parameters:
      client: the broker's Redis.
      namespace: the broker's namespace.
      hostname, pid: whose heartbeat it is; by default the worker process's, read when it boots (a broker
        built before a fork would otherwise carry its parent's pid).
    """

    def __init__(
        self, client: redis.Redis, namespace: str, *, hostname: str | None = None, pid: int | None = None
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.hostname = hostname
        self.pid = pid
        self.key = ""
        self._value = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        consumed = worker.consumer_whitelist or broker.get_declared_queues()
        self.announce(sorted({q_name(name) for name in consumed}))
        self._stop_thread()  # one heartbeat a process, even when a test boots a second worker in it
        self._stop.clear()
        try:
            self.beat()  # at once: a worker that has booted is seen as serving before its first second is up
        except redis.RedisError:
            logger.warning("heartbeat failed; retrying every second", exc_info=True)
        self._thread = threading.Thread(target=self._run, name="airy-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # From here on the worker takes no new message: it no longer serves its queues.
        self._stop_thread()
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key).zrem(index_key(self.namespace), self.key).execute()
        except redis.RedisError:  # the key expires by itself
            logger.warning("could not remove the heartbeat", exc_info=True)

    def announce(self, queues: list[str]) -> None:
        """Sets what the next beats say: the queues this process consumes."""
        hostname, pid = self.hostname or socket.gethostname(), self.pid or os.getpid()
        self.key = heartbeat_key(self.namespace, hostname, pid)
        self._value = json.dumps({"queues": queues, "hostname": hostname, "pid": pid})

    def beat(self) -> None:
        """Writes this process's heartbeat and prunes the index of long-dead ones.

        Raises:
          redis.RedisError: when Redis does not answer.
        """
        seconds, microseconds = self.client.time()
        now = seconds + microseconds / 1_000_000
        index = index_key(self.namespace)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.key, self._value, px=HEARTBEAT_TTL_MS)
            pipe.zadd(index, {self.key: now})
            pipe.zremrangebyscore(index, "-inf", now - INDEX_RETENTION_S)
            pipe.execute()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(BEAT_INTERVAL_S):
            try:
                self.beat()
            except redis.RedisError as exc:  # the beat survives a Redis restart; one line per outage
                if not failing:
                    logger.warning("heartbeat failed; retrying every second", extra={"error": type(exc).__name__})
                failing = True
                continue
            if failing:
                logger.info("heartbeat resumed")
                failing = False
