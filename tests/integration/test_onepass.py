"""One pass (sluice.onepass) against a real TimescaleDB: the same rows, types, profile and report
as the staged path, a type change after the sample loads again, and a failing file leaves nothing
visible."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sluice import catalog, connections, enrich, onepass, profile, read, transform, validate
from sluice.contracts import FileRef, LoadReport, Profile
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict, UnreadableFile, ValidationFailed
from sluice.load import transaction as load
from sluice.schema import inference as schema
from tests.data import weather_csv

BATCH = 1_000  # several batches and COPY chunks in a small file

Conn = psycopg.Connection[tuple[Any, ...]]


def _ref(path: Path, dataset: str, **rules: Any) -> FileRef:
    wanted = DatasetRules(name=dataset, **rules)
    file_id, size = read.fingerprint(path)
    return FileRef(str(path), file_id, dataset, size, wanted.digest(), rules=wanted)


def _options(database: str) -> onepass.Options:
    return onepass.Options(
        schema_name="public",
        lock_timeout_s=5,
        batch_rows=BATCH,
        side=lambda: connections.connect(database),
    )


def _one_pass(database: str, ref: FileRef) -> onepass.Passed:
    with connections.connect(database) as conn:
        return onepass.run(conn, ref, _options(database))


def _staged(db: Conn, ref: FileRef, staging: Path) -> tuple[LoadReport, Any, Any, Any]:
    """The staged path's stages, read to load, on the same file."""
    rules = ref.in_force
    raw = read.run(ref, rules, staging, BATCH)
    inferred = schema.infer(raw, rules, BATCH)
    profiled = profile.run(raw, inferred, rules, BATCH, staging / ref.file_id / "typed.parquet")
    report = validate.run(profiled.typed or raw, inferred, rules, BATCH, profile=profiled)
    ready = transform.run(
        ref, enrich.run(ref, profiled.typed or raw), inferred, rules, staging, BATCH
    )
    loaded = load.run(
        db, ref, ready, inferred, rules, schema_name="public", lock_timeout_s=5, batch_rows=BATCH
    )
    return loaded, inferred, profiled, report


def _table(db: Conn, dataset: str) -> list[tuple[Any, ...]]:
    """The table's user columns and `_row`, in file order."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = %s AND column_name NOT IN ('_load_id', '_ingested_at') "
            "ORDER BY ordinal_position",
            (dataset,),
        ).fetchall()
    ]
    query = sql.SQL("SELECT {} FROM {} ORDER BY _row").format(
        sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier("public", dataset)
    )
    return db.execute(query).fetchall()


def _types(db: Conn, dataset: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (dataset,),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _visible(db: Conn, ref: FileRef) -> tuple[bool, bool]:
    """(the ledger has the file, the dataset's table exists)."""
    ledger = db.execute("SELECT 1 FROM sluice.files WHERE file_id = %s", (ref.file_id,)).fetchone()
    table = db.execute("SELECT to_regclass(%s)", (f"public.{ref.dataset}",)).fetchone()
    return ledger is not None, bool(table and table[0] is not None)


def _same_profile(one: Profile, staged: Profile) -> None:
    """Exact statistics equal; the sketches that merge batch by batch (histogram bins, the
    moments' rounding) agree up to how the rows were cut into batches (the reader's batches
    here, the staged file's there)."""
    assert one.rows == staged.rows
    for a, b in zip(one.columns, staged.columns, strict=True):
        exact = ("name", "pg_type", "count", "nulls", "distinct", "min", "max", "top")
        assert [getattr(a, f) for f in exact] == [getattr(b, f) for f in exact], a.name
        assert (a.mean is None) == (b.mean is None) and (a.stddev is None) == (b.stddev is None)
        if a.mean is not None and b.mean is not None:
            assert a.mean == pytest.approx(b.mean, rel=1e-9)
        if a.stddev is not None and b.stddev is not None:
            assert a.stddev == pytest.approx(b.stddev, rel=1e-9)
        assert sum(x.count for x in a.histogram) == sum(x.count for x in b.histogram)
    assert one.time is not None and staged.time is not None
    assert replace(one.time, resolution_s=0) == replace(staged.time, resolution_s=0)


def _name() -> str:
    return f"op_{uuid.uuid4().hex[:8]}"


def test_one_pass_loads_what_the_staged_path_loads(db: Conn, database: str, tmp_path: Path) -> None:
    path = weather_csv(tmp_path / "a.csv", rows=4_500)
    one, staged = _name(), _name()
    catalog.ensure_catalog(db)

    first = _ref(path, one)
    passed = _one_pass(database, first)
    # the same content into a second table: the ledger (keyed by content) must not say duplicate
    db.execute("DELETE FROM sluice.files WHERE file_id = %s", (first.file_id,))
    loaded, inferred, profiled, report = _staged(db, _ref(path, staged), tmp_path / "staging")

    assert passed.load.rows == loaded.rows == 4_500 and passed.passes == 1
    assert passed.schema == inferred
    assert passed.profile is not None
    _same_profile(passed.profile, profiled)
    assert passed.validation is not None and passed.validation.results == report.results
    assert _types(db, one) == _types(db, staged)
    assert _table(db, one) == _table(db, staged)
    assert set(passed.seconds) >= {"read", "infer_schema", "profile", "validate", "load"}


def test_a_type_the_sample_did_not_show_loads_again_with_the_whole_files_types(
    db: Conn, database: str, tmp_path: Path
) -> None:
    lines = ["ts,reading,code"]
    lines += [f"2024-01-01T00:{i // 60:02}:{i % 60:02}Z,{i},{i % 7}" for i in range(3_000)]
    lines[2_500] = lines[2_500].rsplit(",", 1)[0] + ",X7"  # a code that is not a number
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    passed = _one_pass(database, ref)

    assert passed.passes == 2
    assert passed.load.rows == 3_000
    assert passed.schema.column("code").pg_type == "text"
    assert _types(db, ref.dataset)["code"] == "text"
    codes = [row[2] for row in _table(db, ref.dataset)]
    assert codes[2_499] == "X7" and codes[:3] == ["0", "1", "2"]


def test_a_column_empty_in_the_first_batches_is_decided_by_its_first_values(
    db: Conn, database: str, tmp_path: Path
) -> None:
    lines = ["ts,late"]
    lines += [f"2024-01-02T00:00:{i % 60:02}Z," for i in range(2_500)]  # no value yet
    lines += [f"2024-01-02T01:00:{i % 60:02}Z,{i}.5" for i in range(500)]
    path = tmp_path / "empty-first.csv"
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    passed = _one_pass(database, ref)

    assert passed.passes == 1  # the sample grew until the column showed a value
    assert passed.schema.column("late").pg_type == "double precision"
    assert _types(db, ref.dataset)["late"] == "double precision"


def test_sample_limit_reached_then_values_refute_it(
    db: Conn, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onepass, "SAMPLE_ROWS", BATCH)  # the COPY starts after one batch
    lines = ["ts,late"]
    lines += [f"2024-01-03T00:00:{i % 60:02}Z," for i in range(2_500)]
    lines += [f"2024-01-03T01:00:{i % 60:02}Z,{i}" for i in range(500)]
    path = tmp_path / "empty-long.csv"
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    passed = _one_pass(database, ref)

    assert passed.passes == 2
    assert _types(db, ref.dataset)["late"] == "bigint"
    assert passed.load.rows == 3_000


def test_a_failed_verdict_rolls_everything_back_and_keeps_the_profile(
    db: Conn, database: str, tmp_path: Path
) -> None:
    path = weather_csv(tmp_path / "dup.csv", rows=2_500)
    text = path.read_text().splitlines()
    text.append(",".join(text[1].split(",")[:4] + ["dup"]))  # the first row's key again
    path.write_text("\n".join(text) + "\n")
    ref = _ref(path, _name(), key=("Timestamp", "Station ID"))

    with pytest.raises(ValidationFailed) as failed:
        _one_pass(database, ref)

    assert failed.value.stage == "validate" and failed.value.file == str(path)
    assert _visible(db, ref) == (False, False)  # no ledger row, no table: the DDL rolled back
    stored = db.execute(
        "SELECT rows, validation->>'success' FROM sluice.profiles WHERE file_id = %s",
        (ref.file_id,),
    ).fetchone()
    assert stored == (2_501, "false")


def test_a_malformed_line_deep_in_the_file_leaves_nothing_visible(
    db: Conn, database: str, tmp_path: Path
) -> None:
    path = weather_csv(tmp_path / "bad.csv", rows=3_000)
    lines = path.read_text().splitlines()
    lines[2_800] = lines[2_800] + ',"an extra, unclosed field'
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    with pytest.raises(UnreadableFile) as bad:
        _one_pass(database, ref)

    assert bad.value.stage == "read" and bad.value.file == str(path)
    assert _visible(db, ref) == (False, False)


def test_a_file_in_the_ledger_is_a_duplicate_and_sends_nothing(
    db: Conn, database: str, tmp_path: Path
) -> None:
    path = weather_csv(tmp_path / "twice.csv", rows=1_500)
    ref = _ref(path, _name())
    assert _one_pass(database, ref).load.outcome == "loaded"

    again = _one_pass(database, ref)

    assert again.load.outcome == "duplicate" and again.load.rows == 0
    count = db.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", ref.dataset))
    ).fetchone()
    assert count == (1_500,)


def test_a_declared_type_the_values_do_not_match_is_a_schema_conflict(
    db: Conn, database: str, tmp_path: Path
) -> None:
    path = weather_csv(tmp_path / "forced.csv", rows=1_200)
    ref = _ref(path, _name(), types=(("Note", "bigint"),))

    with pytest.raises(SchemaConflict):
        _one_pass(database, ref)

    assert _visible(db, ref) == (False, False)


def test_one_pass_applies_only_where_the_verdict_can_wait_for_every_row() -> None:
    assert onepass.applies(DatasetRules(name="d"))
    assert not onepass.applies(replace(DatasetRules(name="d"), on_error="rows"))
    assert not onepass.applies(replace(DatasetRules(name="d"), on_missing_time="rows"))


def test_rows_without_a_time_stop_the_copy_and_the_report_counts_them_all(
    db: Conn, database: str, tmp_path: Path
) -> None:
    path = weather_csv(tmp_path / "untimed.csv", rows=3_000)
    lines = path.read_text().splitlines()
    for row in (1_500, 2_800):  # the table's NOT NULL would refuse them mid-COPY
        lines[row] = ",".join(["", *lines[row].split(",")[1:]])
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    with pytest.raises(ValidationFailed) as failed:
        _one_pass(database, ref)

    assert "expect_column_values_to_not_be_null(timestamp): 2 of 3000 rows" in str(failed.value)
    assert _visible(db, ref) == (False, False)


def test_nulls_after_the_sample_in_a_column_it_saw_full_load_as_nulls(
    db: Conn, database: str, tmp_path: Path
) -> None:
    lines = ["ts,level"]
    lines += [f"2024-01-04T00:{i // 60 % 60:02}:{i % 60:02}Z,{i}" for i in range(3_000)]
    lines[2_900] = lines[2_900].split(",")[0] + ",NA"
    path = tmp_path / "late-null.csv"
    path.write_text("\n".join(lines) + "\n")
    ref = _ref(path, _name())

    passed = _one_pass(database, ref)

    assert passed.passes == 1 and passed.load.rows == 3_000
    assert passed.schema.column("level").nullable  # the whole file's, not the sample's
    nulls = db.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE level IS NULL").format(
            sql.Identifier("public", ref.dataset)
        )
    ).fetchone()
    assert nulls == (1,)
