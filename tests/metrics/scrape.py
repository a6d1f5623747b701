"""Reading ``GET /metrics`` as Prometheus would: the text parsed by prometheus_client's own parser."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client, **headers: str) -> Samples:
    """Every sample of one scrape, by name and labels."""
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the scrape does not have it (a labelled child not used yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def families(samples: Samples) -> set[str]:
    """The sample names of a scrape (histograms as their ``_bucket``, ``_sum`` and ``_count``)."""
    return {name for name, _ in samples}
