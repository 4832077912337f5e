"""`sluice demo` in a home, a rules file and a schema of its own: the demo's `weather` rules
(key station_id, its suite) never reach a user's dataset of the same name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from sluice import cli
from sluice import demo as sample
from sluice.cli import app
from sluice.datasets import DatasetRules, load_rules
from sluice.settings import Settings

pytestmark = [pytest.mark.services, pytest.mark.flow]


def test_the_demo_lands_in_its_own_home_and_schema_under_its_own_rules(
    prefect_api: None,
    database: str,
    redis_client: redis.Redis,
    home: Path,
    settings: Settings,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli.out, "width", 200)  # the table's cells on one line each
    users = (settings.home, settings.datasets, settings.schema_name)

    result = CliRunner().invoke(app, ["demo", "--rows", "200"])

    assert result.exit_code == 0, result.output
    landed = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 5
    }
    assert landed["weather"] == ["demo.weather", "3", "600", "3"]
    assert landed["energy"][:3] == ["demo.energy", "1", "200"]
    assert sorted(p.name for p in (home / "demo" / "inbox").iterdir()) == ["energy", "weather"]
    assert not (home / "inbox" / "weather").exists()
    with sample.rules_file() as path:
        demo_rules = load_rules(path, "weather")
    hashes = db.execute(
        "SELECT DISTINCT rules_hash FROM sluice.files WHERE target = 'demo.weather'"
    )
    assert hashes.fetchall() == [(demo_rules.digest(),)]  # its key and its suite
    assert (settings.home, settings.datasets, settings.schema_name) == users


def test_a_users_weather_file_under_the_default_rules_file_gets_none_of_the_demos_rules(
    ingest: Any, home: Path, settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_DATASETS")
    monkeypatch.setattr(settings, "datasets", Settings().datasets)  # SLUICE_DATASETS unset
    path = home / "inbox" / "weather" / "mine.csv"  # no station_id: the demo's key would refuse it
    path.parent.mkdir(parents=True)
    path.write_text("observed,temp\n2024-05-01T00:00:00Z,3.5\n2024-05-01T01:00:00Z,4.0\n")

    state = ingest(path)

    assert state.is_completed(), state.message
    assert state.result().table == "public.weather"
    [(rules_hash,)] = db.execute(
        "SELECT rules_hash FROM sluice.files WHERE file_id = %s", (state.result().file_id,)
    ).fetchall()
    assert rules_hash == DatasetRules(name="weather").digest()
