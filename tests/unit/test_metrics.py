"""sluice.metrics: the counters move by what a file brings, and the Grafana dashboard queries
exactly the metrics the code exports (a renamed metric would leave a panel empty)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from sluice import metrics

REPO = Path(__file__).resolve().parents[2]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_loaded_file_counts_its_rows_and_bytes_a_quarantined_one_only_its_bytes() -> None:
    before = {
        "loaded": _value("sluice_files_total", dataset="unitm", outcome="loaded"),
        "quarantined": _value("sluice_files_total", dataset="unitm", outcome="quarantined"),
        "rows": _value("sluice_rows_total", dataset="unitm"),
        "bytes": _value("sluice_bytes_total", dataset="unitm"),
    }

    metrics.file_ended("unitm", "loaded", rows=10, size=100)
    metrics.file_ended("unitm", "quarantined", rows=7, size=50)

    assert _value("sluice_files_total", dataset="unitm", outcome="loaded") == before["loaded"] + 1
    assert (
        _value("sluice_files_total", dataset="unitm", outcome="quarantined")
        == before["quarantined"] + 1
    )
    assert _value("sluice_rows_total", dataset="unitm") == before["rows"] + 10
    assert _value("sluice_bytes_total", dataset="unitm") == before["bytes"] + 150


def test_a_stage_counts_a_retry_only_after_its_first_attempt() -> None:
    retries = _value("sluice_retries_total", stage="unitstage")
    observed = _value("sluice_stage_seconds_count", stage="unitstage")

    metrics.stage_done("unitstage", 0.2, attempt=1)
    metrics.stage_done("unitstage", 0.3, attempt=2)

    assert _value("sluice_retries_total", stage="unitstage") == retries + 1
    assert _value("sluice_stage_seconds_count", stage="unitstage") == observed + 2


def test_the_dashboard_queries_every_metric_and_no_other() -> None:
    dashboard = json.loads((REPO / "grafana" / "sluice-dashboard.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = {re.sub(r"_(total|bucket)$", "", m) for m in re.findall(r"\bsluice_\w+", queries)}
    exported = {
        collector._name  # noqa: SLF001
        for collector in vars(metrics).values()
        if hasattr(collector, "_name") and str(collector._name).startswith("sluice_")  # noqa: SLF001
    }

    assert used == exported
