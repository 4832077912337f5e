"""`sluice ingest` and `sluice status` through typer's runner against the real services: one
line per file, `--json`, the summary, exit status, one-line reasons on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from typer.testing import CliRunner

from sluice.cli import app
from sluice.settings import Settings
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


def test_json_prints_every_outcome_and_nothing_else(cli: CliRunner, home: Path) -> None:
    good = weather_csv(home / "inbox" / "clijson" / "good.csv", rows=40)
    bad = home / "inbox" / "clijson" / "ragged.csv"
    bad.write_text("ts,v\n2024-01-01,1\n2024-01-02,2,3\n")

    result = cli.invoke(app, ["ingest", "--json", str(good), str(bad)])

    assert result.exit_code == 1
    outcomes = json.loads(result.stdout)
    assert [(o["path"], o["outcome"], o["rows"]) for o in outcomes] == [
        (str(good), "loaded", 40),
        (str(bad), "quarantined", 0),
    ]
    assert outcomes[0]["table"] == "public.clijson" and len(outcomes[0]["file_id"]) == 64
    assert "line 3 has 3 fields" in outcomes[1]["message"]


def test_several_files_end_with_a_summary_table_on_stderr(cli: CliRunner, home: Path) -> None:
    first = weather_csv(home / "inbox" / "clisum" / "a.csv", rows=30)
    second = weather_csv(home / "inbox" / "clisum" / "b.csv", rows=45, step_s=601)

    result = cli.invoke(app, ["ingest", str(first), str(second), str(first)])

    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "loaded",
        "loaded",
        "duplicate",
    ]
    summary = {
        cells[0]: cells[1:3]
        for line in result.stderr.splitlines()
        if (cells := [c.strip() for c in line.strip("│ ").split("│")])[0] in ("loaded", "duplicate")
    }
    assert "Summary" in result.stderr
    assert summary == {"loaded": ["2", "75"], "duplicate": ["1", "0"]}, result.stderr


def test_an_unreachable_database_is_one_line_and_exit_one(
    cli: CliRunner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        settings, "database_url", SecretStr("postgresql://sluice@127.0.0.1:9/nothing")
    )

    result = cli.invoke(app, ["status"])

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: PostgreSQL unavailable (")
    assert line.endswith("start it with `sluice services up postgres`")
    assert "Traceback" not in result.output


def test_wrong_dataset_rules_fail_the_file_without_quarantining_it(
    cli: CliRunner, home: Path, settings: Settings
) -> None:
    settings.datasets.write_text("datasets:\n  badrules:\n    chunk_intervall: 1 day\n")
    path = weather_csv(home / "inbox" / "badrules" / "a.csv", rows=10)

    result = cli.invoke(app, ["ingest", str(path)])

    assert result.exit_code == 1
    assert result.stdout.split()[0] == "failed"
    assert "the dataset rules are wrong" in result.stderr
    assert "chunk_intervall" in result.stderr and str(settings.datasets) in result.stderr
    assert "bug" not in result.stderr
    assert path.exists()  # kept in the inbox, not quarantined
    assert not list((home / "quarantine").rglob("*a.csv"))
