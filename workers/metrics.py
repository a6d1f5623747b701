"""Actor runs counted and timed: ``airy_actor_messages_total`` and ``airy_actor_duration_seconds``.

Dramatiq's own ``middleware/prometheus.py`` does the same with an HTTP server of its own in each worker host;
here the counts go to the host's metric files (:mod:`airy_actors.metric_files`), which the web serves in one
scrape with everything else.
"""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.middleware import Middleware

from airy_actors import metrics


class ActorMetrics(Middleware):
    """Counts each message an actor processed, by outcome, and times its run.

    A worker thread processes one message at a time, from ``before_process_message`` to
    ``after_process_message``, so the start of the run is kept per thread.
    """

    def __init__(self) -> None:
        self._started = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._started.at = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        started, self._started.at = getattr(self._started, "at", None), None
        outcome = "succeeded" if exception is None else "failed"
        metrics.actor_messages.labels(actor=message.actor_name, outcome=outcome).inc()
        if started is not None:  # None: a middleware before this one failed the message before it ran
            metrics.actor_duration.labels(actor=message.actor_name).observe(time.perf_counter() - started)

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        self._started.at = None
        metrics.actor_messages.labels(actor=message.actor_name, outcome="skipped").inc()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        metrics.process_ended()
