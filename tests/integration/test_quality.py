"""The data-quality gate end to end: suites, severities, row-level quarantine, profiles, drift
and the Prefect artifacts, against real Redis, TimescaleDB and Prefect's ephemeral API."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from sluice.cli import app
from sluice.settings import Settings
from tests.fix_services import count_rows

pytestmark = [pytest.mark.services, pytest.mark.flow]
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _rules(settings: Settings, **datasets: dict[str, Any]) -> None:
    settings.datasets.write_text(yaml.safe_dump({"datasets": datasets}))


def _suite(home: Path, name: str, *items: tuple[str, dict[str, Any], str]) -> str:
    path = home / "expectations" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    expectations = [{"type": t, "kwargs": k, "meta": {"severity": s}} for t, k, s in items]
    path.write_text(json.dumps({"name": name, "expectations": expectations}))
    return str(path)


def _readings(
    path: Path,
    rows: int,
    *,
    start: datetime = T0,
    temp: float = 20.0,
    null_every: int = 0,
    sites: str = "ABC",
    bad: dict[int, str] | None = None,
) -> Path:
    """ts (10 min steps), site (a category), temp_c (around `temp`), level (1..9); `bad` replaces
    whole lines by 0-based row."""
    lines = ["ts,site,temp_c,level"]
    for i in range(rows):
        ts = (start + timedelta(minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = "" if null_every and i % null_every == 0 else f"{temp + (i % 21 - 10) * 0.5:.1f}"
        lines.append(f"{ts},{sites[i % len(sites)]},{value},{i % 9 + 1}")
    for row, line in (bad or {}).items():
        lines[row + 1] = line
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _validation(db: Any, file_id: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT validation FROM sluice.profiles WHERE file_id = %s", (file_id,)
    ).fetchone()
    assert row is not None and row[0] is not None
    return dict(row[0])


def _artifact(key: str) -> Any:
    """The newest artifact under this key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read() -> Any:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )
        return found[0]

    return asyncio.run(read())


def _section(dataset: str, kind: str) -> tuple[str, list[dict[str, str]]]:
    """The `kind` table (profile, validation) of the dataset's newest run summary: its title
    line and its rows, as the summary artifact's markdown shows them."""
    artifact = _artifact(f"summary-{dataset}")
    assert artifact.type == "markdown"
    lines = artifact.data.split("\n")
    at = lines.index(f"#### {kind}")
    title = lines[at + 2]
    table = []
    for line in lines[at + 4 :]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip("|").split(" | ")])
    names = table[0]
    return title, [dict(zip(names, row, strict=True)) for row in table[2:]]


def test_a_passing_file_loads_and_publishes_profile_and_validation(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    suite = _suite(
        home,
        "q_pass",
        ("expect_column_values_to_be_between", {"column": "level", "min_value": 1}, "error"),
        ("expect_column_values_to_be_in_set", {"column": "site", "value_set": list("ABC")}, "warn"),
    )
    _rules(settings, q_pass={"suite": suite})
    path = _readings(home / "inbox" / "q_pass" / "a.csv", 500)

    state = ingest(path)

    assert state.is_completed(), state.message
    outcome = state.result()
    assert (outcome.outcome, outcome.rows) == ("loaded", 500)
    assert count_rows(db, "q_pass") == 500
    stored = db.execute(
        "SELECT profile FROM sluice.profiles WHERE file_id = %s", (outcome.file_id,)
    ).fetchone()[0]
    temp = next(c for c in stored["columns"] if c["name"] == "temp_c")
    assert temp["count"] == 500 and temp["null_ratio"] == 0
    assert sum(b["count"] for b in temp["histogram"]) == 500
    assert stored["time"]["start"] == "2024-05-01T00:00:00+00:00"
    assert stored["time"]["step_s"] == 600 and stored["time"]["gaps"] == 0
    assert _validation(db, outcome.file_id)["success"] is True

    _, profile_rows = _section("q-pass", "profile")
    columns = {row["column"]: row for row in profile_rows}
    assert columns["site"]["top"] == "A (167), B (167), C (166)"
    assert set(columns["temp_c"]) >= {"null_ratio", "distinct", "mean", "stddev", "histogram"}
    title, validation_rows = _section("q-pass", "validation")
    checks = [(r["check"], r["outcome"]) for r in validation_rows]
    assert ("expect_column_values_to_be_between", "passed") in checks
    assert "passed" in title


def test_a_file_failing_an_error_expectation_is_quarantined_and_nothing_is_visible(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    suite = _suite(
        home,
        "q_fail",
        ("expect_column_values_to_be_between", {"column": "level", "max_value": 5}, "error"),
    )
    _rules(settings, q_fail={"suite": suite})
    path = _readings(home / "inbox" / "q_fail" / "a.csv", 90)  # levels 6..9: 40 rows

    state = ingest(path)

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "expect_column_values_to_be_between(level): 40 of 90 rows unexpected" in message
    assert "[6, 7, 8, 9]" in message
    assert db.execute("SELECT to_regclass('public.q_fail')").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM sluice.files WHERE dataset='q_fail'").fetchone() == (0,)
    kept = [p.name for p in (home / "quarantine" / "q_fail").iterdir()]
    assert len(kept) == 1 and kept[0].endswith("-a.csv") and not path.exists()
    validation = _validation(db, _file_id(db, "q_fail"))
    assert validation["failed"][0]["unexpected"] == 40


def _file_id(db: Any, dataset: str) -> str:
    return str(
        db.execute("SELECT file_id FROM sluice.profiles WHERE dataset = %s", (dataset,)).fetchone()[
            0
        ]
    )


def test_a_warn_only_failure_loads_and_records_the_warning(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    suite = _suite(
        home,
        "q_warn",
        ("expect_column_values_to_be_in_set", {"column": "site", "value_set": ["A", "B"]}, "warn"),
    )
    _rules(settings, q_warn={"suite": suite})
    path = _readings(home / "inbox" / "q_warn" / "a.csv", 30)  # site C: 10 rows

    state = ingest(path)

    assert state.is_completed(), state.message
    outcome = state.result()
    assert count_rows(db, "q_warn") == 30
    [warning] = _validation(db, outcome.file_id)["warnings"]
    assert warning == {
        "expectation": "expect_column_values_to_be_in_set(site)",
        "unexpected": 10,
        "sample": ["C"],
    }
    _, rows = _section("q-warn", "validation")
    in_set = [r for r in rows if r["check"] == "expect_column_values_to_be_in_set"]
    assert [(r["column"], r["outcome"], r["unexpected"]) for r in in_set] == [
        ("site", "warning", "10")
    ]


def test_row_level_mode_splits_the_rows_exactly_between_table_and_quarantine_file(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    suite = _suite(
        home,
        "q_rows",
        ("expect_column_values_to_be_between", {"column": "temp_c", "max_value": 40}, "error"),
        ("expect_column_values_to_be_in_set", {"column": "site", "value_set": list("ABC")}, "warn"),
    )
    _rules(settings, q_rows={"suite": suite, "on_error": "rows"})
    bad = {
        3: ",A,20.0,1",  # no time: baseline not-null (error)
        10: "2024-05-01T01:40:00Z,B,99.0,2",  # too hot
        11: ",C,99.0,3",  # both: one row in the rows file
        400: "2024-05-03T18:40:00Z,Z,21.0,4",  # a warning only: loads
    }
    path = _readings(home / "inbox" / "q_rows" / "a.csv", 1000, bad=bad)

    state = ingest(path)

    assert state.is_completed(), state.message
    outcome = state.result()
    assert (outcome.outcome, outcome.rows) == ("loaded", 997)
    assert count_rows(db, "q_rows") == 997
    rows_file = home / "quarantine" / "q_rows" / f"{outcome.file_id}.rows.parquet"
    rejected = pq.read_table(rows_file).to_pylist()
    assert [r["_row"] for r in rejected] == [4, 11, 12]
    assert rejected[2]["_failed"] == (
        "expect_column_values_to_not_be_null(ts); expect_column_values_to_be_between(temp_c)"
    )
    assert rejected[1]["temp_c"] == 99.0
    loaded_rows = {r[0] for r in db.execute("SELECT _row FROM public.q_rows").fetchall()}
    assert loaded_rows == set(range(1, 1001)) - {4, 11, 12}
    assert count_rows(db, "q_rows", "site = 'Z'") == 1
    ledger = db.execute("SELECT rows FROM sluice.files WHERE dataset = 'q_rows'").fetchone()
    assert ledger == (997,)
    assert str(rows_file) in outcome.message
    validation = _validation(db, outcome.file_id)
    assert (validation["mode"], validation["rejected_rows"]) == ("rows", 3)
    summary, _ = _section("q-rows", "validation")
    assert "mode `rows`" in summary and "3 rows quarantined" in summary


def test_suite_init_writes_a_suite_that_applies_at_once_passes_its_file_and_catches_a_bad_one(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    sample = _readings(home / "samples" / "typical.csv", 2000, null_every=50)

    result = CliRunner().invoke(app, ["suite", "init", "q_init", str(sample)])

    assert result.exit_code == 0, result.output
    written = settings.datasets.parent / "expectations" / "q_init.json"
    assert f"{written}: " in result.stdout and "add `suite:" not in result.output
    assert "applies to dataset q_init" in " ".join(result.stderr.split())
    suite = json.loads(written.read_text())
    by_type = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}
    assert by_type[("expect_column_values_to_be_in_set", "site")]["kwargs"]["value_set"] == list(
        "ABC"
    )
    level = by_type[("expect_column_values_to_be_between", "level")]["kwargs"]
    assert (level["min_value"], level["max_value"]) == (1, 9)
    assert by_type[("expect_column_values_to_not_be_null", "temp_c")]["kwargs"]["mostly"] == 0.93
    assert by_type[("expect_column_values_to_not_be_null", "level")]["meta"]["severity"] == "error"
    assert not settings.datasets.exists()  # no rule names the suite: its name is enough

    good = ingest(_readings(home / "inbox" / "q_init" / "a.csv", 300, null_every=50))
    assert good.is_completed(), good.message
    warned = _validation(db, good.result().file_id)["warnings"]
    assert warned == []
    odd = ingest(
        _readings(
            home / "inbox" / "q_init" / "b.csv", 300, start=T0 + timedelta(days=9), sites="ABD"
        )
    )
    assert odd.is_completed(), odd.message
    [warning] = _validation(db, odd.result().file_id)["warnings"]
    assert warning["expectation"] == "expect_column_values_to_be_in_set(site)"
    assert warning["sample"] == ["D"]


def test_a_suite_named_after_its_dataset_gates_the_dataset_without_a_rule(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    _suite(
        settings.datasets.parent,
        "q_named",
        ("expect_column_values_to_be_between", {"column": "level", "max_value": 5}, "error"),
    )
    assert not settings.datasets.exists()

    state = ingest(_readings(home / "inbox" / "q_named" / "a.csv", 90))

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "expect_column_values_to_be_between(level): 40 of 90 rows unexpected" in message
    assert list((home / "quarantine" / "q_named").iterdir())
    assert db.execute("SELECT to_regclass('public.q_named')").fetchone() == (None,)


def test_drift_is_flagged_on_a_shifted_file_and_fails_it_when_the_rule_says_error(
    ingest: Any, db: Any, home: Path, settings: Settings
) -> None:
    _rules(settings, q_drift={})
    inbox = home / "inbox" / "q_drift"
    for day in range(2):
        state = ingest(_readings(inbox / f"day{day}.csv", 144, start=T0 + timedelta(days=day)))
        assert state.is_completed(), state.message

    shifted = _readings(
        inbox / "shifted.csv",
        144,
        start=T0 + timedelta(days=2),
        temp=45.0,
        null_every=2,
        sites="ABCD",
    )
    state = ingest(shifted)

    assert state.is_completed(), state.message  # drift warns by default
    validation = _validation(db, state.result().file_id)
    found = {(d["check"], d["column"]): d for d in validation["drift"]}
    assert set(found) == {
        ("mean_shift", "temp_c"),
        ("null_ratio", "temp_c"),
        ("new_categories", "site"),
    }
    assert found[("mean_shift", "temp_c")]["score"] > 3
    assert "'D'" in found[("new_categories", "site")]["message"]
    assert validation["history"] == 2
    _, artifact_rows = _section("q-drift", "validation")
    assert {r["check"] for r in artifact_rows if r["outcome"] == "warning"} >= {
        "drift: mean_shift",
        "drift: null_ratio",
        "drift: new_categories",
    }

    _rules(settings, q_drift={"drift": {"errors": ["mean_shift"]}})
    late = _readings(inbox / "late.csv", 144, start=T0, temp=80.0)  # before the loaded days too
    failed = ingest(late)

    assert failed.is_failed()
    message = str(failed.result(raise_on_failure=False))
    assert "drift mean_shift(temp_c)" in message and "1 drift error(s)" in message
    assert "time_order" not in message  # still a warning
    assert count_rows(db, "q_drift") == 3 * 144
