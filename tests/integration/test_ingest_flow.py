"""The ingest-file flow end to end: real Redis and TimescaleDB, Prefect's ephemeral API."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from sluice.read import fingerprint
from sluice.settings import Settings
from sluice.state.checkpoints import Keys
from tests.data import START, weather_csv
from tests.fix_prefect import task_states
from tests.fix_services import count_rows

pytestmark = [pytest.mark.services, pytest.mark.flow]


def test_csv_becomes_a_hypertable_with_a_ledger_row(ingest: Any, db: Any, home: Path) -> None:
    path = weather_csv(home / "inbox" / "hyper" / "day1.csv", rows=3000)

    state = ingest(path)

    assert state.is_completed(), state.message
    outcome = state.result()
    assert (outcome.outcome, outcome.rows, outcome.table) == ("loaded", 3000, "public.hyper")
    assert count_rows(db, "hyper") == 3000
    assert count_rows(db, "hyper", "air_temp_c IS NULL") == 300  # every `NA` cell
    types = dict(
        db.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'hyper'"
        ).fetchall()
    )
    assert types == {
        "timestamp": "timestamp with time zone",
        "station_id": "bigint",
        "air_temp_c": "double precision",
        "humidity": "bigint",
        "note": "text",
        "_load_id": "bigint",
        "_row": "bigint",
        "_ingested_at": "timestamp with time zone",
    }
    dims = db.execute(
        "SELECT column_name FROM timescaledb_information.dimensions "
        "WHERE hypertable_schema = 'public' AND hypertable_name = 'hyper'"
    ).fetchall()
    assert dims == [("timestamp",)]
    hypertables = db.execute(
        "SELECT num_dimensions, num_chunks > 0 FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = 'public' AND hypertable_name = 'hyper'"
    ).fetchall()
    assert hypertables == [(1, True)]
    ledger = db.execute(
        "SELECT file_id, dataset, rows FROM sluice.files WHERE dataset = 'hyper'"
    ).fetchall()
    assert ledger == [(outcome.file_id, "hyper", 3000)]
    first = db.execute("SELECT timestamp, _row FROM public.hyper ORDER BY _row LIMIT 1").fetchone()
    assert first == (START, 1)
    assert not (home / "staging" / outcome.file_id).exists()  # staging removed after commit


def test_the_same_file_again_is_a_duplicate_and_changes_nothing(
    ingest: Any, db: Any, home: Path
) -> None:
    path = weather_csv(home / "inbox" / "dup" / "a.csv", rows=500)
    assert ingest(path).result().outcome == "loaded"
    copy = home / "inbox" / "dup" / "a-again.csv"
    copy.write_bytes(path.read_bytes())

    again = ingest(copy).result()

    assert again.outcome == "duplicate"
    assert count_rows(db, "dup") == 500
    assert db.execute("SELECT count(*) FROM sluice.files WHERE dataset = 'dup'").fetchone() == (1,)


def _fail_load(ingest: Any, path: Path, table: str, settings: Settings) -> Any:
    """Ingest `path` while a lock on its table makes load time out until the retries run out."""
    with psycopg.connect(settings.dsn()) as holder:
        holder.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier("public", table)
            )
        )
        state = ingest(path)
        holder.rollback()
    return state


def test_a_load_that_failed_transiently_resumes_at_load(
    ingest: Any, db: Any, home: Path, settings: Settings, per_stage: None
) -> None:
    assert ingest(weather_csv(home / "inbox" / "locked" / "1.csv", rows=200)).is_completed()
    second = weather_csv(home / "inbox" / "locked" / "2.csv", rows=200)

    failed = _fail_load(ingest, second, "locked", settings)

    assert failed.is_failed()
    assert "lock" in str(failed.result(raise_on_failure=False)).lower()
    assert count_rows(db, "locked") == 200  # nothing of the failed load is visible
    assert second.exists()  # a transient failure does not quarantine

    resumed = ingest(second)

    assert resumed.is_completed()
    assert count_rows(db, "locked") == 400
    states = task_states(resumed.state_details.flow_run_id)
    assert states["read"] == "Cached"
    assert states["infer_schema"] == "Cached"
    assert states["transform"] == "Cached"
    assert states["load"] == "Completed"
    assert "prepare" not in states


def _ran(stage: str) -> float:
    """How many times this process ran a stage's body (its Prometheus count)."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sluice_stage_seconds_count", {"stage": stage}) or 0.0


def test_a_small_file_runs_as_one_task_and_resumes_at_load(
    ingest: Any, db: Any, home: Path, settings: Settings, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    """One task run (`file`) for fingerprint..cleanup; read..transform persist under prepare's
    cache key inside it, so a run that failed at load resumes there without a stage again."""
    assert ingest(weather_csv(home / "inbox" / "fused" / "1.csv", rows=210)).is_completed()
    second = weather_csv(home / "inbox" / "fused" / "2.csv", rows=310)
    assert second.stat().st_size < settings.fuse_below_bytes
    reads = _ran("read")

    failed = _fail_load(ingest, second, "fused", settings)

    assert failed.is_failed()
    assert count_rows(db, "fused") == 210
    assert task_states(failed.state_details.flow_run_id) == {"whole": "Failed"}
    assert _ran("read") == reads + 1
    file_id = fingerprint(second)[0]
    assert list(redis_client.scan_iter(match=f"{sink_keys.prefix}result:prepare:*:{file_id}:*"))

    resumed = ingest(second)

    assert resumed.is_completed()
    assert count_rows(db, "fused") == 520
    assert task_states(resumed.state_details.flow_run_id) == {"whole": "Completed"}
    assert _ran("read") == reads + 1  # prepare's stored result: no stage ran again
    assert _ran("load") >= 1


@pytest.mark.parametrize("per_task", [True, False], ids=["per_stage", "fused"])
def test_a_resumed_run_whose_staging_is_gone_stages_the_file_again(
    ingest: Any,
    db: Any,
    home: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    per_task: bool,
) -> None:
    if per_task:
        monkeypatch.setattr(settings, "fuse_below_bytes", 0)
        monkeypatch.setattr(settings, "one_pass", False)
    dataset, more = ("lost_per_stage", 0) if per_task else ("lost_fused", 20)
    assert ingest(weather_csv(home / "inbox" / dataset / "1.csv", rows=100 + more)).is_completed()
    second = weather_csv(home / "inbox" / dataset / "2.csv", rows=150 + more)
    failed = _fail_load(ingest, second, dataset, settings)
    assert failed.is_failed()
    restaged = _ran("restage")
    for staged in (home / "staging").iterdir():  # e.g. a machine restart emptied the staging
        shutil.rmtree(staged)

    resumed = ingest(second)

    assert resumed.is_completed(), resumed.message
    assert resumed.result().outcome == "loaded"
    assert count_rows(db, dataset) == 250 + 2 * more
    if per_task:
        assert "restage" in task_states(resumed.state_details.flow_run_id)
    else:
        assert _ran("restage") == restaged + 1
    assert second.exists() and not (home / "quarantine" / dataset).exists()


def test_a_malformed_file_is_quarantined_with_a_dead_letter(
    ingest: Any,
    db: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    bad = home / "inbox" / "broken" / "ragged.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("time,v\n2024-01-01T00:00:00Z,1\n2024-01-01T00:10:00Z,2,3\n")

    state = ingest(bad)

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "ragged.csv" in message and "read" in message and "number of fields" in message
    assert not bad.exists()
    kept = list((home / "quarantine" / "broken").iterdir())
    assert [p.name.split("-", 1)[1] for p in kept] == ["ragged.csv"]
    letters = redis_client.xrange(sink_keys.dead)
    fields = {k.decode(): v.decode() for k, v in letters[-1][1].items()}
    assert (fields["stage"], fields["error"], fields["dataset"]) == (
        "read",
        "UnreadableFile",
        "broken",
    )
    assert db.execute("SELECT to_regclass('public.broken')").fetchone() == (None,)


def test_a_file_failing_validation_loads_nothing(ingest: Any, db: Any, home: Path) -> None:
    path = home / "inbox" / "gaps" / "g.csv"
    path.parent.mkdir(parents=True)
    rows = [f"2024-01-01T00:{m:02d}:00Z,{m}" for m in range(50)] + [",99", ",98"]
    path.write_text("ts,value\n" + "\n".join(rows) + "\n")

    state = ingest(path)

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "validate" in message and "not_be_null" in message and "2" in message
    assert db.execute("SELECT to_regclass('public.gaps')").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM sluice.files WHERE dataset='gaps'").fetchone() == (0,)
    assert list((home / "quarantine" / "gaps").iterdir())


@pytest.fixture
def large(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file takes a large file's path: one pass (SLUICE_ONE_PASS, the default)."""
    monkeypatch.setattr(settings, "fuse_below_bytes", 0)
    monkeypatch.setattr(settings, "one_pass", True)


def test_a_large_file_loads_in_one_task_run_with_every_stage_in_its_summary(
    ingest: Any, db: Any, home: Path, large: None
) -> None:
    from tests.integration.test_metrics import _run_details

    path = weather_csv(home / "inbox" / "one_pass" / "a.csv", rows=2_500)

    state = ingest(path)

    assert state.is_completed(), state.message
    assert (state.result().outcome, state.result().rows) == ("loaded", 2_500)
    assert count_rows(db, "one_pass") == 2_500
    states = task_states(state.state_details.flow_run_id)
    assert states.get("onepass") == "Completed", states
    assert not {"read", "infer_schema", "profile", "validate", "load"} & set(states)
    _tags, artifacts = _run_details(state.state_details.flow_run_id)
    summary = artifacts["markdown"].data
    for stage in ("read", "infer_schema", "profile", "validate", "enrich", "load"):
        assert f"| {stage} |" in summary, stage
    assert "#### profile" in summary and "#### validation" in summary


def test_a_large_file_that_fails_its_verdict_is_quarantined_with_nothing_visible(
    ingest: Any, db: Any, home: Path, large: None
) -> None:
    path = weather_csv(home / "inbox" / "one_pass_bad" / "a.csv", rows=1_500)
    lines = path.read_text().splitlines()
    lines[700] = ",".join(["", *lines[700].split(",")[1:]])  # a row without its time
    path.write_text("\n".join(lines) + "\n")

    state = ingest(path)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert error.stage == "validate" and error.file == str(path)
    assert not path.exists()  # kept in quarantine
    [kept] = (home / "quarantine" / "one_pass_bad").iterdir()
    assert kept.name.endswith("-a.csv")
    table = db.execute("SELECT to_regclass('public.one_pass_bad')").fetchone()
    assert table == (None,)  # the table created in the load's transaction rolled back too
