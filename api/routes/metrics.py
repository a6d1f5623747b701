"""``GET /metrics``: every metric of the host in Prometheus' text format (behind the system token when set).

The counters and histograms of every process of the host, summed (:class:`airy_actors.metrics.HostCollector`),
and gauges read now: the queues from Redis, the spool from disk, the failed events from the database. A source
that does not answer leaves its gauges out, and says so in ``airy_scrape_source_up``, rather than failing the
scrape: the counters matter most during an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airy_actors.metrics import HostCollector
from api.facebook_writer import writer
from api.operations import Operation, Text, documented
from api.state_metrics import FailedEventsCollector, SpoolCollector
from workers import queues
from workers.broker import broker
from workers.queue_metrics import QueueCollector

logger = logging.getLogger(__name__)


class Collector(Protocol):
    def collect(self) -> Iterator[Metric]: ...


class StateCollector:
    """The gauges read at scrape time, each source on its own: one that fails is left out and logged.

    Parameters:
      sources: the collectors by the name of what they read (``redis``, ``spool``, ``database``).
    """

    def __init__(self, sources: dict[str, Collector]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "airy_scrape_source_up",
            "Whether a source of gauges answered this scrape (1) or not (0).",
            labels=["source"],
        )
        for name, source in self.sources.items():
            try:
                families = list(source.collect())
            except Exception as error:
                reason = {"source": name, "error": type(error).__name__}
                logger.warning("metrics: a source of gauges did not answer", extra=reason)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def registry() -> CollectorRegistry:
    """What a scrape collects."""
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(HostCollector())
    sources: dict[str, Collector] = {
        "redis": QueueCollector(broker.client, broker.namespace, queues.ALL),
        "spool": SpoolCollector(writer.spool),
        "database": FailedEventsCollector(),
    }
    scraped.register(StateCollector(sources))
    return scraped


@documented(
    Operation(
        "Every metric of the host, in Prometheus' text format",
        answers={200: Text("text/plain")},
        description="Web and worker processes of one host summed in one scrape (AIRY_METRICS=off: no such endpoint).",
    )
)
async def scrape(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


ROUTES: list[Route] = [Route("/metrics", scrape, methods=["GET"])]
