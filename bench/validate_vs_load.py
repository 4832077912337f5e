"""Benchmark: what the quality gate (profile + validate) costs next to the load of the same file.

    .venv/bin/python -m bench.validate_vs_load --rows 2000000 --rounds 3

Runs the engine's stages directly (no Prefect, so no orchestration overhead in the figures) on
an 8-column time-series CSV: read, infer_schema, profile (which also stages the typed copy the
later stages read), validate with 12 expectations (the baseline's 10 and 2 from a suite file;
Great Expectations imported once, before the rounds, and reported apart), enrich, transform,
load (binary COPY into a fresh hypertable, ledger row included), and `psql \\copy` of the same
CSV into an identical hypertable. Needs the local PostgreSQL (`bash scripts/services.sh up
postgres`). Prints medians of the rounds; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    connect,
    drop_table,
    ensure_csv,
    forget_file,
    hypertable,
    psql_copy,
)
from sluice import enrich, load, profile, read, schema, transform, validate
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.settings import get_settings
from sluice.validate import gx as validate_gx

TABLE, COPY_TABLE = "bench_quality", "bench_quality_copy"
SEED = 1001  # the file of bench.ingest_vs_copy


def suite_file(folder: Path) -> Path:
    """Two expectations beyond the baseline: 12 in all for the bench file."""
    path = folder / "bench_quality.json"
    checks = [
        ("expect_column_values_to_be_in_set", {"column": "category", "value_set": list("abcde")}),
        ("expect_column_values_to_be_between", {"column": "b", "min_value": 0, "max_value": 100}),
    ]
    items = [{"type": t, "kwargs": k, "meta": {"severity": "warn"}} for t, k in checks]
    path.write_text(json.dumps({"name": TABLE, "expectations": items}))
    return path


def one_round(
    conn: psycopg.Connection[Any], path: Path, rules: DatasetRules, staging: Path
) -> dict[str, float]:
    """Every stage once on the file; seconds by stage."""
    settings = get_settings()
    file_id, size = read.fingerprint(path)
    ref = FileRef(str(path), file_id, TABLE, size, rules.digest())
    drop_table(conn, TABLE)
    forget_file(conn, file_id)
    shutil.rmtree(staging / file_id, ignore_errors=True)
    rows = settings.batch_rows
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - started
        return result

    raw = timed("read", lambda: read.run(ref, rules, staging, rows))
    inferred = timed("infer_schema", lambda: schema.infer(raw, rules, rows))
    typed_path = staging / file_id / "typed.parquet"
    profiled = timed("profile", lambda: profile.run(raw, inferred, rules, rows, typed_path))
    typed = profiled.typed
    report = timed("validate", lambda: validate.run(typed, inferred, rules, rows, profile=profiled))
    if len(report.results) != 12:
        raise SystemExit(f"expected 12 expectations, ran {len(report.results)}")
    enriched = timed("enrich", lambda: enrich.run(ref, typed, report.rejected))
    ready = timed("transform", lambda: transform.run(ref, enriched, inferred, rules, staging, rows))
    timed(
        "load",
        lambda: load.run(
            conn,
            ref,
            ready,
            inferred,
            rules,
            schema_name="public",
            lock_timeout_s=30,
            batch_rows=rows,
        ),
    )
    shutil.rmtree(staging / file_id, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = ensure_csv(args.rows, SEED)
    rules = DatasetRules(TABLE, suite=str(suite_file(path.parent)))
    started = time.perf_counter()
    validate_gx._runtime()  # import Great Expectations once, as a warm worker has
    gx_import = time.perf_counter() - started
    rounds: list[dict[str, float]] = []
    copies: list[float] = []
    with connect() as conn:
        for _ in range(args.rounds):
            rounds.append(one_round(conn, path, rules, path.parent / "staging"))
            hypertable(conn, COPY_TABLE)
            copies.append(psql_copy(path, COPY_TABLE))
        drop_table(conn, TABLE)
        drop_table(conn, COPY_TABLE)
        conn.execute("DELETE FROM sluice.files WHERE dataset = %s", (TABLE,))  # its ledger rows
    report(args.rows, path, rounds, copies, gx_import)


def report(
    rows: int, path: Path, rounds: list[dict[str, float]], copies: list[float], gx_import: float
) -> None:
    median = {stage: statistics.median(r[stage] for r in rounds) for stage in rounds[0]}
    print(f"file: {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB, {len(rounds)} rounds (median)")
    print(f"import great_expectations (once per process, not in the rounds): {gx_import:.2f} s")
    for stage, seconds in median.items():
        print(f"  {stage:<13} {seconds:6.2f} s  {rows / seconds:>12,.0f} rows/s")
    gate = median["profile"] + median["validate"]
    copy = statistics.median(copies)
    label = "psql \\copy"
    print(f"  {label:<13} {copy:6.2f} s  (same CSV, identical hypertable)")
    print(
        f"profile + validate: {gate:.2f} s = {gate / median['load']:.2f} x load "
        f"({median['load']:.2f} s), {gate / copy:.2f} x psql \\copy ({copy:.2f} s)"
    )


if __name__ == "__main__":
    main()
