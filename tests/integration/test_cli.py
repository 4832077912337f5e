"""`sluice ingest` through typer's runner: one line per file, exit status, reasons on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from sluice.cli import app
from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


@pytest.fixture
def cli(prefect_api: None, database: str, redis_client: redis.Redis, home: Path) -> CliRunner:
    return CliRunner()


def test_loaded_and_duplicate_files_exit_zero(cli: CliRunner, home: Path) -> None:
    path = weather_csv(home / "inbox" / "clidata" / "a.csv", rows=120)

    first = cli.invoke(app, ["ingest", str(path)])
    again = cli.invoke(app, ["ingest", str(path)])

    assert first.exit_code == 0, first.output
    [line] = first.stdout.splitlines()
    assert line.split()[:3] == ["loaded", "120", "rows"]
    assert line.endswith(f"{path} -> public.clidata")
    assert again.exit_code == 0
    assert again.stdout.split()[:2] == ["duplicate", "0"]


def test_a_quarantined_file_exits_one_with_the_reason_on_stderr(cli: CliRunner, home: Path) -> None:
    good = weather_csv(home / "inbox" / "climix" / "good.csv", rows=50)
    bad = home / "inbox" / "climix" / "ragged.csv"
    bad.write_text("ts,v\n2024-01-01,1\n2024-01-02,2,3\n")

    result = cli.invoke(app, ["ingest", str(good), str(bad)])

    assert result.exit_code == 1
    outcomes = [line.split()[0] for line in result.stdout.splitlines()]
    assert outcomes == ["loaded", "quarantined"]
    assert "ragged.csv: read: line 3 has 3 fields where the header has 2" in result.stderr
    assert "fix or remove it" in result.stderr


def test_a_file_without_a_time_column_loads_with_a_note(cli: CliRunner, home: Path) -> None:
    path = home / "inbox" / "clinotime" / "counts.csv"
    path.parent.mkdir(parents=True)
    path.write_text("a,b\n1,2\n")

    result = cli.invoke(app, ["ingest", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.split()[:2] == ["loaded", "1"]
    assert "note: no column holds dates or timestamps" in result.stderr
    assert "partitioned on _ingested_at" in result.stderr
