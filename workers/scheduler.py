"""Periodic actors, run by whichever worker process takes the turn.

Dramatiq has no clock of its own. Every worker process runs a small thread that, for each periodic actor,
tries to take a Redis lock that lives for one interval; the process that takes it enqueues the actor. However
many workers run, each periodic actor is enqueued about once per interval, and it keeps running while any
worker is alive.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import dramatiq
import redis
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)

TICK_S = 1.0


@dataclass(frozen=True)
class PeriodicTask:
    actor: dramatiq.Actor
    interval_ms: int


_tasks: list[PeriodicTask] = []


def periodic(interval_ms: int):
    """Marks an actor (taking no arguments) to be enqueued every ``interval_ms`` milliseconds.

    Use below ``@dramatiq.actor``::

        @periodic(interval_ms=30_000)
        @dramatiq.actor
        def sweep(): ...
    """

    def register(actor: dramatiq.Actor) -> dramatiq.Actor:
        _tasks.append(PeriodicTask(actor, interval_ms))
        return actor

    return register


class PeriodicScheduler(Middleware):
    """Runs the clock thread in every worker process."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="airy-scheduler", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def tick(self) -> list[str]:
        """Enqueues every periodic actor whose turn it is. Returns their names."""
        enqueued = []
        for task in _tasks:
            key = f"{self.namespace}:periodic:{task.actor.actor_name}"
            if self.client.set(key, "1", nx=True, px=task.interval_ms):
                task.actor.send()
                enqueued.append(task.actor.actor_name)
        return enqueued

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # the clock survives a Redis restart
                logger.warning("periodic tick failed", exc_info=True)
