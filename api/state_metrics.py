"""Gauges of the web's own state, read when scraped: ``airy_spool_bytes`` and ``airy_failed_events``."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from airy_actors import event_failures
from airy_actors.db import database
from airy_actors.spool import Spool


class SpoolCollector:
    """``airy_spool_bytes``: webhook requests kept on disk while the database was down, not drained yet.

    Parameters:
      spool: the web's spool (its directory is shared by every web process of the host).
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "airy_spool_bytes",
            "Bytes of webhook requests spooled on this host while the database was unreachable, not drained yet.",
            value=self.spool.size_bytes(),
        )


class FailedEventsCollector:
    """``airy_failed_events{status}``: events that could not be applied, retrying or failed for good."""

    def collect(self) -> Iterator[Metric]:
        with database.connection_context():
            counts = event_failures.count_by_status()
        family = GaugeMetricFamily(
            "airy_failed_events",
            "Events that could not be applied: retrying (attempts remain) or failed (listed by /events.failed).",
            labels=["status"],
        )
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family
