"""Schema evolution against the real TimescaleDB: added, widened and refused columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from sluice import enrich, load, read, schema, transform
from sluice.contracts import FileRef, LoadReport
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict

pytestmark = pytest.mark.services


def _load(
    conn: psycopg.Connection[Any], tmp_path: Path, name: str, text: str, rules: DatasetRules
) -> LoadReport:
    """The engine's stages, read to load, on one file (no Prefect: evolution is the subject)."""
    path = tmp_path / name
    path.write_text(text)
    file_id, size = read.fingerprint(path)
    ref = FileRef(str(path), file_id, rules.name, size, rules.digest())
    raw = read.run(ref, rules, tmp_path / "staging", 1000)
    inferred = schema.infer(raw, rules, 1000)
    ready = transform.run(
        ref,
        enrich.run(ref, raw),
        inferred,
        rules,
        tmp_path / "staging",
        1000,
    )
    return load.run(
        conn, ref, ready, inferred, rules, schema_name="public", lock_timeout_s=5, batch_rows=1000
    )


def _types(db: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s AND column_name NOT LIKE '\\_%%'",
        (table,),
    ).fetchall()
    return dict(rows)


def test_new_columns_are_added_and_safe_widenings_applied(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    rules = DatasetRules(name="evo")
    _load(db, tmp_path, "a.csv", "day,count,Label\n2024-01-01,1,x\n2024-01-02,2,y\n", rules)

    report = _load(
        db, tmp_path, "b.csv", "day,count,Extra Col\n2024-01-03T06:00:00Z,2.5,7\n", rules
    )

    assert report.added_columns == ("extra_col",)
    assert set(report.widened_columns) == {"day", "count"}
    assert _types(db, "evo") == {
        "day": "timestamp with time zone",
        "count": "double precision",
        "label": "text",
        "extra_col": "bigint",
    }
    rows = db.execute(
        "SELECT day::text, count, label, extra_col FROM public.evo ORDER BY day"
    ).fetchall()
    assert [r[1:] for r in rows] == [(1.0, "x", None), (2.0, "y", None), (2.5, None, 7)]
    history = db.execute(
        "SELECT change, detail->>'column', detail->>'source' FROM sluice.schema_history "
        "WHERE target = 'public.evo' AND change <> 'create' ORDER BY id"
    ).fetchall()
    assert history == [
        ("add_column", "extra_col", "Extra Col"),
        ("widen_column", "day", "day"),
        ("widen_column", "count", "count"),
    ]


def test_an_incompatible_column_is_refused_and_nothing_is_loaded(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    rules = DatasetRules(name="evo_refuse")
    _load(db, tmp_path, "a.csv", "ts,reading\n2024-01-01T00:00:00Z,5\n", rules)

    with pytest.raises(SchemaConflict) as info:
        _load(db, tmp_path, "b.csv", "ts,reading\n2024-01-02T00:00:00Z,high\n", rules)

    assert "'reading' holds text in this file but bigint in public.evo_refuse" in str(info.value)
    assert db.execute("SELECT count(*) FROM public.evo_refuse").fetchone() == (1,)
    assert db.execute(
        "SELECT count(*) FROM sluice.files WHERE dataset = 'evo_refuse'"
    ).fetchone() == (1,)


def test_the_dataset_may_allow_text_widening_or_force_a_type(
    db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    first = "ts,reading\n2024-01-01T00:00:00Z,5\n"
    wide = DatasetRules(name="evo_text", widen_to_text=True)
    _load(db, tmp_path, "a.csv", first, wide)
    _load(db, tmp_path, "b.csv", "ts,reading\n2024-01-02T00:00:00Z,high\n", wide)
    assert _types(db, "evo_text")["reading"] == "text"

    forced = DatasetRules(name="evo_forced", types=(("reading", "text"),))
    _load(db, tmp_path, "c.csv", first.replace("5", "007"), forced)
    assert db.execute("SELECT reading FROM public.evo_forced").fetchone() == ("007",)


def test_concurrent_loads_adding_the_same_column_both_land(
    database: str, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """Two files with the same new column load at once: one adds it, the other finds it there."""
    import threading

    rules = DatasetRules(name="evo_race")
    _load(db, tmp_path, "base.csv", "day,v\n2024-01-01,1\n", rules)
    errors: list[BaseException] = []
    reports: list[LoadReport] = []

    def load_one(i: int) -> None:
        try:
            with psycopg.connect(database, autocommit=True) as conn:
                body = f"day,v,new_col\n2024-01-0{i + 2},{i},{i * 10}\n"
                reports.append(_load(conn, tmp_path / f"t{i}", f"n{i}.csv", body, rules))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for i in range(3):
        (tmp_path / f"t{i}").mkdir()
    threads = [threading.Thread(target=load_one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(r.outcome for r in reports) == ["loaded"] * 3
    assert sum(bool(r.added_columns) for r in reports) == 1  # one of them added it
    assert _types(db, "evo_race")["new_col"] == "bigint"
    count = db.execute("SELECT count(*) FROM public.evo_race").fetchone()
    assert count is not None and count[0] == 4
