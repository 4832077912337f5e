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
    bad = home / "inbox" / "climix" / "no-time.csv"
    bad.write_text("a,b\n1,2\n3,4\n")

    result = cli.invoke(app, ["ingest", str(good), str(bad)])

    assert result.exit_code == 1
    outcomes = [line.split()[0] for line in result.stdout.splitlines()]
    assert outcomes == ["loaded", "quarantined"]
    assert "no-time.csv: infer_schema: no column holds timestamps" in result.stderr
    assert "time_column in datasets.yaml" in result.stderr
