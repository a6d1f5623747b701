"""The product's Prometheus metrics: the counters and histograms, each named with its unit, and their sum.

Each is moved where its outcome is decided: the webhook (``api/routes/facebook_webhook.py``), every other API
request (``api/request_metrics.py``), every actor run (``workers/metrics.py``), the ingestion, the sends and the
deliveries to integrators (``airy_actors``). The hot paths use children looked up here once, at import.

Every process of the host writes them to files of its own (:mod:`airy_actors.metric_files`), and the web's
``GET /metrics`` sums them (:class:`HostCollector`). Gauges of state kept elsewhere are read when scraped, by
the web, and are not here: the queues in Redis (``workers/queue_metrics.py``), the spool and the failed events
(``api/state_metrics.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from airy_actors import metric_files

logger = logging.getLogger(__name__)

disable_created_metrics()  # the *_created series say when a process started: noise once summed over processes

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACTOR_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LAG_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

webhook_requests = Counter(
    "airy_webhook_requests_total",
    "POST /facebook requests, by outcome: the HTTP status answered, or disconnected (no one left to answer).",
    ["outcome"],
)
api_requests = Counter(
    "airy_api_requests_total",
    "API requests other than POST /facebook, by endpoint (the route's path; unmatched for none) and status.",
    ["endpoint", "status"],
)
api_request_duration = Histogram(
    "airy_api_request_duration_seconds",
    "Time from an API request's arrival to its answer's headers, by endpoint (POST /facebook not included).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS_S,
)
actor_messages = Counter(
    "airy_actor_messages_total",
    "Messages processed by the actors, by actor and outcome: succeeded, failed (raised) or skipped.",
    ["actor", "outcome"],
)
actor_duration = Histogram(
    "airy_actor_duration_seconds",
    "Time an actor took to process a message, by actor.",
    ["actor"],
    buckets=ACTOR_BUCKETS_S,
)
ingestion_lag = Histogram(
    "airy_ingestion_lag_seconds",
    "From a webhook request's storing (its received_at) to the commit of a message made from it; one a message.",
    buckets=LAG_BUCKETS_S,
)
sends = Counter(
    "airy_sends_total",
    "Outbound messages that reached an outcome: delivered (Facebook answered with its id) or failed.",
    ["outcome"],
)
integrator_deliveries = Counter(
    "airy_integrator_deliveries_total",
    "Attempts to deliver an event to an integrator's webhook: delivered, failed (for good) or retried (later).",
    ["outcome"],
)
stream_clients = Gauge(
    "airy_event_stream_clients",
    "Clients connected to GET /events.stream, summed over the live web processes.",
    multiprocess_mode="livesum",
)
stream_slow_disconnects = Counter(
    "airy_event_stream_slow_disconnects_total",
    "Event stream clients disconnected because they read slower than events came (their buffer was full).",
)

WEBHOOK_OUTCOMES = ("200", "400", "403", "413", "503")
WEBHOOK_ACCEPTED = webhook_requests.labels(outcome="200")
WEBHOOK_DISCONNECTED = webhook_requests.labels(outcome="disconnected")
SENDS_DELIVERED = sends.labels(outcome="delivered")
SENDS_FAILED = sends.labels(outcome="failed")
INTEGRATOR_DELIVERIES = {
    outcome: integrator_deliveries.labels(outcome=outcome) for outcome in ("delivered", "failed", "retried")
}
for _outcome in WEBHOOK_OUTCOMES:  # every outcome is scraped from the start, at 0, so that rates have a base
    webhook_requests.labels(outcome=_outcome)


def webhook_answered(status: int) -> None:
    """Counts a webhook request answered with ``status`` (refusals: the 200 has its own child)."""
    webhook_requests.labels(outcome=str(status)).inc()


def observe_ingestion_lag(stored_at_ms: int, requests: Iterable[tuple[int, int]]) -> None:
    """Observes the ingestion lag once per message stored.

    Parameters:
      stored_at_ms: when the messages were committed.
      requests: for each webhook request applied, its ``received_at`` (ms) and how many messages it made.
    """
    for received_at_ms, messages in requests:
        lag_s = max(0, stored_at_ms - received_at_ms) / 1000
        for _ in range(messages):
            ingestion_lag.observe(lag_s)


_HOST_ROOT = metric_files.host_root()  # decided with prometheus_client's mode: at import, from the environment


class HostCollector:
    """The counters and histograms of every process of the host, summed; or of this process alone.

    Parameters:
      root: the host's metrics directory (every run's files); None when this process keeps its metrics in
        memory (tests, or a process not started by the console script), whose registry is then collected.
    """

    ATTEMPTS = 3

    def __init__(self, root: Path | None = _HOST_ROOT) -> None:
        self.root = root

    def collect(self) -> Iterator[Metric]:
        if self.root is None:
            yield from REGISTRY.collect()
            return
        for attempt in range(self.ATTEMPTS):
            try:
                merged = MultiProcessCollector.merge(metric_files.metric_files(self.root), accumulate=True)
                break
            except FileNotFoundError:  # an ended run removed since the listing: list again
                if attempt == self.ATTEMPTS - 1:
                    raise
        yield from merged


def process_ended() -> None:
    """Tells the host's sum that this process is gone (its files of live gauges go; counters stay)."""
    if _HOST_ROOT is not None:
        mark_process_dead(os.getpid(), os.environ[metric_files.ENVIRONMENT_VARIABLE])
