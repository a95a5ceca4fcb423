"""The Grafana dashboard is valid JSON and refers only to metrics that exist (and are documented)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from irods_ingest import metrics as worker_metrics
from irods_ingest_operator import metrics as operator_metrics

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SUFFIX = re.compile(r"(_bucket|_count|_sum|_created)$")


def exported_names() -> set[str]:
    names: set[str] = set()
    for registry in (worker_metrics.REGISTRY, operator_metrics.REGISTRY):
        for family in registry.collect():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_dashboard_uses_only_existing_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/irods-ingest.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {
        SAMPLE_SUFFIX.sub("", name)
        for expr in exprs
        for name in re.findall(r"\b(irods_ingest_[a-z_]+)\b", expr)
    }
    assert used and used <= exported_names(), used - exported_names()
    documented = set(re.findall(r"`(irods_ingest_[a-z_]+)`", (ROOT / "docs/metrics.md").read_text()))
    assert exported_names() == documented  # every metric documented, nothing documented that does not exist
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
