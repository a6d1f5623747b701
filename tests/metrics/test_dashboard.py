"""The Grafana dashboard in the repository asks only for families that ``GET /metrics`` serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "airy-actors.json"
SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")


def expressions(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["expr"]] if "expr" in node else []
        return own + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


def test_every_family_the_dashboard_queries_is_served(api):
    served = {
        family.name + suffix
        for family in text_string_to_metric_families(api.get("/metrics").text)
        for suffix in SUFFIXES
    }
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for expr in expressions(dashboard) for name in re.findall(r"airy_\w+", expr)}
    assert len(queried) >= 12
    assert queried <= served, queried - served
