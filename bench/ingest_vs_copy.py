"""Benchmark (goal 1, big file): `sluice ingest` of an N-row CSV, all stages, against `psql
\\copy` of the same file into an identical hypertable, side by side in one run (alternating
rounds; median, min-max). Goal: ratio sluice / psql <= 1.0.

    .venv/bin/python -m bench.ingest_vs_copy --rows 2000000 --rounds 3

The rounds run the flow in this process after a warm-up file (imports and Prefect's start paid
once, as in `sluice serve`); one more run of the `sluice` command in a new process shows what
the imports add. Every round is a new file for Sluice: its ledger row and cached stage results
are deleted first, and the stage counts of this process's metrics show that each of the eight
stages ran (a cached stage does not run). Needs the local services (`make services`). Prints
numbers; asserts nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import (
    STAGES,
    Figures,
    connect,
    drop_table,
    ensure_csv,
    forget_dataset,
    forget_file,
    goal,
    hypertable,
    make_csv,
    parser_for,
    psql_copy,
    rounds_within,
    sluice_cli,
    stage_counts,
    uncached,
    write_json,
)
from sluice.settings import get_settings

COPY_TABLE, SLUICE_TABLE = "bench_big_copy", "bench_big_sluice"
SEED = 1001  # contents no other script loads (the ledger is keyed by content)


def copy_round(path: Path) -> float:
    with connect() as conn:
        hypertable(conn, COPY_TABLE)
    return psql_copy(path, COPY_TABLE)


def sluice_round(path: Path) -> tuple[float, list[str]]:
    """Seconds of one in-process run of the flow on the file; the stages that did not run."""
    from sluice.cli import _runs_api, run_files
    from sluice.read import fingerprint

    _runs_api(get_settings()).ready()  # as `sluice ingest` does: the local server

    with connect() as conn:
        drop_table(conn, SLUICE_TABLE)
        forget_file(conn, fingerprint(path)[0])
    before = stage_counts()
    started = time.perf_counter()
    [outcome] = run_files([path], SLUICE_TABLE, quiet=True)
    seconds = time.perf_counter() - started
    if outcome.outcome != "loaded":
        raise SystemExit(f"sluice ingest did not load {path}: {outcome}")
    return seconds, uncached(before, stage_counts(), 1)


def measure(rows: int, rounds: int, budget_s: float | None = None) -> dict[str, Any]:
    path = ensure_csv(rows, SEED)
    warm = make_csv(path.with_name(f"warmup-{time.time_ns()}.csv"), 1000, seed=time.time_ns())
    started = time.perf_counter()
    try:
        sluice_round(warm)
    finally:
        warm.unlink()
    first = time.perf_counter() - started
    copies, ingests, skipped = [], [], set()
    for _ in rounds_within(rounds, budget_s):
        copies.append(copy_round(path))
        seconds, missing = sluice_round(path)
        ingests.append(seconds)
        skipped.update(missing)
    cli = sluice_cli(path, SLUICE_TABLE)  # a new process: imports and Prefect's start too
    skipped.update(f"{s} x0 (new process)" for s in STAGES if s not in cli.stages)
    with connect() as conn:
        drop_table(conn, COPY_TABLE)
        forget_dataset(conn, SLUICE_TABLE)  # the table, and the ledger rows of all its runs
    return dict(
        rows=rows, mb=path.stat().st_size / 1e6, rounds=len(copies), first_run_s=first,
        copy=Figures(tuple(copies)), ingest=Figures(tuple(ingests)), cli_s=cli.seconds,
        not_run=sorted(skipped),
    )  # fmt: skip


def report(m: dict[str, Any]) -> list[dict[str, Any]]:
    copy, ingest, rows = m["copy"], m["ingest"], m["rows"]
    ratio = ingest.median / copy.median
    print(f"file: {rows:,} rows, {m['mb']:.0f} MB, {m['rounds']} rounds (median, min-max)")
    print(f"first run in process (1,000 rows, imports + Prefect start): {m['first_run_s']:.2f} s")
    print(f"psql \\copy into hypertable : {copy.show():>24}  {rows / copy.median:>9,.0f} rows/s")
    print(f"sluice ingest (all stages) : {ingest.show():>24}  {rows / ingest.median:>9,.0f} rows/s")
    print(f"sluice ingest, new process : {m['cli_s']:8.2f} s (imports included, one run)")
    print(f"ratio sluice / psql        : {ratio:6.2f}  (goal <= 1.0)")
    print(
        "stages run every round     : "
        + (f"NO, not run: {m['not_run']}" if m["not_run"] else "yes")
    )
    return [
        goal(
            f"1. big file: `sluice ingest` of {rows:,} rows (all stages, warm process)"
            " / `psql \\copy`",
            ingest.show(), copy.show(), ratio, "<= 1.0", ratio <= 1.0 and not m["not_run"],
            cli_s=round(m["cli_s"], 2), first_run_s=round(m["first_run_s"], 2),
            not_run=m["not_run"],
        )
    ]  # fmt: skip


def main() -> None:
    parser = parser_for(__doc__, rounds=3)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    m = measure(args.rows, args.rounds, args.budget_s)
    goals = report(m)
    write_json(args.json, goals, copy_s=m["copy"].values, ingest_s=m["ingest"].values)


if __name__ == "__main__":
    main()
