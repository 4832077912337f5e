"""`sluice status` and `sluice datasets` against the real services: per dataset, today's loads
and quarantines, rows, the last load, the inbox lag, runs in flight and dead letters."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from sluice import cli
from sluice.cli import app
from sluice.settings import Settings
from sluice.state.checkpoints import Keys
from sluice.state.locks import FileLock
from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


def _status(dataset: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    [found] = [s for s in json.loads(result.stdout) if s["dataset"] == dataset]
    return found


def test_status_counts_loads_quarantines_waiting_files_runs_and_letters(
    ingest: Any,
    home: Path,
    redis_client: redis.Redis,
    settings: Settings,
    sink_keys: Keys,
) -> None:
    folder = home / "inbox" / "statusdata"
    assert ingest(weather_csv(folder / "a.csv", rows=100)).is_completed()
    assert ingest(weather_csv(folder / "b.csv", rows=50, step_s=601)).is_completed()
    bad = folder / "ragged.csv"
    bad.write_text("ts,v\n2024-01-01,1\n2024-01-02,2,3\n")
    assert ingest(bad).is_failed()
    waiting = weather_csv(folder / "c.csv", rows=10)  # dropped, not ingested yet
    an_hour_ago = time.time() - 3600
    os.utime(waiting, (an_hour_ago, an_hour_ago))
    lock = FileLock(redis_client, sink_keys.lock("f" * 64), lease_s=30)  # a live statusdata run
    redis_client.hset(sink_keys.file("f" * 64), mapping={"dataset": "statusdata"})
    assert lock.try_acquire()
    try:
        found = _status("statusdata")
    finally:
        lock.release()

    assert found["loaded_today"] == 2
    assert found["rows_today"] == 150
    assert found["quarantined_today"] == 1
    assert found["dead_letters"] == 1
    assert found["waiting"] == 1  # a.csv and b.csv are loaded, ragged.csv is in quarantine
    assert 3590 <= found["inbox_lag_s"] <= 3700
    assert found["in_flight"] == 1
    assert found["last_load"] is not None


def test_status_table_and_datasets_show_the_rules_in_force(
    ingest: Any, home: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.out, "width", 200)  # the table's cells on one line each
    settings.datasets.write_text(
        "datasets:\n  statusrules:\n    key: [station_id, timestamp]\n"
        "    chunk_interval: 1 day\n    on_error: rows\n"
    )
    assert ingest(weather_csv(home / "inbox" / "statusrules" / "a.csv", rows=20)).is_completed()
    runner = CliRunner()

    table = runner.invoke(app, ["status"])
    rules = runner.invoke(app, ["datasets", "--json"])

    assert table.exit_code == 0, table.output
    [row] = [line for line in table.stdout.splitlines() if "statusrules" in line]
    assert [c.strip() for c in row.strip("│ ").split("│")][1:4] == ["1", "0", "20"]
    assert rules.exit_code == 0, rules.output
    [rule] = json.loads(rules.stdout)
    assert rule["dataset"] == "statusrules"
    assert rule["key"] == "station_id, timestamp"
    assert (rule["chunk_interval"], rule["on_error"], rule["time_column"]) == (
        "1 day",
        "rows",
        "auto",
    )
