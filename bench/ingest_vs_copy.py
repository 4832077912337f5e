"""Benchmark (goal 1, a big file at COPY speed): `sluice ingest` of an N-row CSV, all stages,
against `psql \\copy` of the same file into an identical hypertable, in one run (rounds
alternate; median, min-max), the three ways a file meets Sluice:

- warm: the flow in this process after a warm-up file (imports and Prefect's start paid once,
  as in `sluice serve` or `sluice worker`). Goal: sluice / psql <= 1.0.
- cold, server up: the `sluice ingest` command in a new process, as a shell runs it, with the
  project's Prefect server running. Goal: sluice <= psql + 4 s.
- cold, no server: the same, the project's Prefect server stopped first (by the services script,
  and only a server it manages), so the command starts it. Goal: sluice <= psql + 4 s.

Beside psql, the floor of what Sluice writes: a binary COPY of the same rows as Sluice sends them
(the typed columns and the lineage columns `_load_id`, `_row`, `_ingested_at`), encoded before
the clock starts by Sluice's own encoder, into a fresh hypertable of those columns. psql's table
has no lineage columns; the difference between the two is what the lineage costs PostgreSQL.

    .venv/bin/python -m bench.ingest_vs_copy --rows 2000000 --rounds 3

Every round is a new file for Sluice: its ledger row and cached stage results are deleted
first. That each of the eight stages ran: this process's stage metrics (warm), the stage seconds
in the run's summary artifact read back from the Prefect API (a new process). The Prefect server
is left as found: running if it ran, stopped if this benchmark started it. Needs the local
services (`make services`). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
from psycopg import sql

from bench.common import (
    COLUMNS,
    STAGES,
    CliRun,
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
    services,
    sluice_cli,
    stage_counts,
    uncached,
    write_json,
)
from sluice import enrich
from sluice.contracts import PgType
from sluice.load.pgcopy import iter_copy_parts
from sluice.load.transaction import LINEAGE_COLUMNS, with_load_id
from sluice.schema.casts import arrow_type
from sluice.settings import get_settings

COPY_TABLE, SLUICE_TABLE, LINEAGE_TABLE = "bench_big_copy", "bench_big_sluice", "bench_big_lineage"
WITH_LINEAGE = COLUMNS + "".join(
    f", {name} {pg_type} NOT NULL" for name, pg_type in LINEAGE_COLUMNS
)
# the bench file's columns (bench.common.make_csv) as Sluice infers them: COLUMNS' types
TYPES: dict[str, PgType] = {
    name: cast(PgType, pg_type.removesuffix(" NOT NULL"))
    for name, pg_type in (column.split(" ", 1) for column in COLUMNS.split(", "))
}
SEED = 1001  # contents no other script loads (the ledger is keyed by content)
COLD_ALLOWANCE_S = 4.0  # a new process may take psql's time plus this (issue 13)
STARTED = "starting the local Prefect server"  # the line `sluice ingest` says it with


def copy_round(path: Path) -> float:
    with connect() as conn:
        hypertable(conn, COPY_TABLE)
    return psql_copy(path, COPY_TABLE)


def encoded_with_lineage(path: Path, batch_rows: int) -> list[bytes]:
    """The file's rows as Sluice's COPY sends them, typed and with the lineage columns: the
    binary COPY's header, chunks and trailer, made by Sluice's own encoder."""
    types = {name: arrow_type(pg_type) for name, pg_type in TYPES.items()}
    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))
    schema = pa.schema([*table.schema, *enrich.LINEAGE])
    batches = with_load_id(enrich.with_lineage(
        iter(table.to_batches(max_chunksize=batch_rows)), schema, "f" * 64, datetime.now(UTC),
        np.empty(0, dtype=np.int64),
    ), 1)  # fmt: skip
    return [
        part
        for part, _ in iter_copy_parts(batches, [*TYPES.values(), *(t for _, t in LINEAGE_COLUMNS)])
    ]


def lineage_round(chunks: list[bytes]) -> float:
    """Seconds of a binary COPY of the encoded chunks into a fresh hypertable, committed."""
    with connect() as conn:
        hypertable(conn, LINEAGE_TABLE, WITH_LINEAGE)
        target = sql.Identifier("public", LINEAGE_TABLE)
        started = time.perf_counter()
        statement = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(target)
        with conn.transaction(), conn.cursor().copy(statement) as copy:
            for chunk in chunks:
                copy.write(chunk)
        return time.perf_counter() - started


def sluice_round(path: Path) -> tuple[float, list[str]]:
    """Seconds of one in-process run of the flow on the file; the stages that did not run."""
    from sluice.cli import run_files, runs_api
    from sluice.read import fingerprint

    runs_api(get_settings()).ready()  # as `sluice ingest` does: the local server

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


def prefect_managed() -> bool:
    """The services script runs the project's Prefect server now (its pidfile, answering)."""
    return services("status", "--quiet", "prefect") == 0


def without_server(path: Path) -> tuple[CliRun | None, str]:
    """`sluice ingest` with the project's Prefect server stopped first; None (and why) when the
    server that answers is not one the services script manages: it is not ours to stop."""
    if not prefect_managed():
        return None, "a Prefect server the services script does not manage answers: not stopped"
    services("down", "prefect")
    run = sluice_cli(path, SLUICE_TABLE)
    return run, ("" if STARTED in run.stderr else "the command did not say it started a server")


def not_run(run: CliRun, label: str) -> list[str]:
    return [f"{s} x0 ({label})" for s in STAGES if s not in run.stages]


def measure(rows: int, rounds: int, budget_s: float | None = None) -> dict[str, Any]:
    path = ensure_csv(rows, SEED)
    ran_before = prefect_managed()
    warm = make_csv(path.with_name(f"warmup-{time.time_ns()}.csv"), 1000, seed=time.time_ns())
    started = time.perf_counter()
    try:
        sluice_round(warm)  # starts the local services it needs, as the command does
    finally:
        warm.unlink()
    first = time.perf_counter() - started
    chunks = encoded_with_lineage(path, get_settings().batch_rows)
    copies, warms, colds, bares, skipped, notes = [], [], [], [], set(), set()
    lineages = []
    try:
        for _ in rounds_within(rounds, budget_s):
            copies.append(copy_round(path))
            lineages.append(lineage_round(chunks))
            seconds, missing = sluice_round(path)
            warms.append(seconds)
            skipped.update(missing)
            cold = sluice_cli(path, SLUICE_TABLE)  # a new process, the server up
            colds.append(cold.seconds)
            skipped.update(not_run(cold, "new process"))
            bare, note = without_server(path)
            if bare is not None:
                bares.append(bare.seconds)
                skipped.update(not_run(bare, "new process, no server"))
            notes.update(filter(None, [note]))
    finally:
        if not ran_before:  # leave the machine as found: the server was not running
            services("down", "prefect")
        with connect() as conn:
            drop_table(conn, COPY_TABLE)
            drop_table(conn, LINEAGE_TABLE)
            forget_dataset(conn, SLUICE_TABLE)  # the table, and the ledger rows of all its runs
    return dict(
        rows=rows, mb=path.stat().st_size / 1e6, rounds=len(copies), first_run_s=first,
        copy=Figures(tuple(copies)), lineage=Figures(tuple(lineages)),
        warm=Figures(tuple(warms)), cold=Figures(tuple(colds)),
        bare=Figures(tuple(bares)) if bares else None, not_run=sorted(skipped),
        notes=sorted(notes),
    )  # fmt: skip


def _line(label: str, figures: Figures, rows: int, tail: str) -> None:
    print(f"{label:<34}: {figures.show():>24}  {rows / figures.median:>9,.0f} rows/s  {tail}")


def report(m: dict[str, Any]) -> list[dict[str, Any]]:
    copy, warm, cold, bare, rows = m["copy"], m["warm"], m["cold"], m["bare"], m["rows"]
    limit = copy.median + COLD_ALLOWANCE_S
    print(f"file: {rows:,} rows, {m['mb']:.0f} MB, {m['rounds']} rounds (median, min-max)")
    print(f"first run in process (1,000 rows, imports + Prefect start): {m['first_run_s']:.2f} s")
    _line("psql \\copy into hypertable", copy, rows, "(baseline)")
    lineage = m["lineage"]
    tail = f"ratio {lineage.median / copy.median:.2f} (binary, with lineage columns psql lacks)"
    _line("binary COPY, Sluice's rows", lineage, rows, tail)
    _line("sluice, warm process", warm, rows, f"ratio {warm.median / copy.median:.2f} (<= 1.0)")
    print(f"sluice warm / binary COPY of its rows: {warm.median / lineage.median:.2f}")
    for label, figures in (("sluice ingest, server up", cold), ("sluice ingest, no server", bare)):
        if figures is not None:
            tail = f"ratio {figures.median / copy.median:.2f} (<= psql + 4 s = {limit:.2f} s)"
            _line(label, figures, rows, tail)
    if bare is not None:
        print(f"starting the Prefect server added   : {bare.median - cold.median:6.2f} s (median)")
    for note in m["notes"]:
        print(f"note: {note}")
    ran = f"NO: {m['not_run']}" if m["not_run"] else "yes"
    print(f"stages run every round            : {ran}")
    return _goals(m, limit)


def _goals(m: dict[str, Any], limit: float) -> list[dict[str, Any]]:
    copy, rows, ok = m["copy"], m["rows"], not m["not_run"]
    name = f"1{{}}. big file, {rows:,} rows, all stages: `sluice ingest` {{}} / `psql \\copy`"
    warm = m["warm"]
    goals = [
        goal(
            name.format("", "in a warm process"), warm.show(), copy.show(),
            warm.median / copy.median, "<= 1.0", ok and warm.median <= copy.median,
            first_run_s=round(m["first_run_s"], 2), not_run=m["not_run"],
            binary_copy_with_lineage_s=round(m["lineage"].median, 2),
        )
    ]  # fmt: skip
    cold_ones = (("a", "in a new process, Prefect server up", m["cold"]),
                 ("b", "in a new process, no Prefect server running", m["bare"]))  # fmt: skip
    for letter, how, figures in cold_ones:
        if figures is None:
            continue
        goals.append(
            goal(
                name.format(letter, how), figures.show(), copy.show(),
                figures.median / copy.median, f"<= psql + {COLD_ALLOWANCE_S:g} s",
                ok and figures.median <= limit, limit_s=round(limit, 2), notes=m["notes"],
            )
        )  # fmt: skip
    return goals


def main() -> None:
    parser = parser_for(__doc__, rounds=3)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    m = measure(args.rows, args.rounds, args.budget_s)
    goals = report(m)
    write_json(
        args.json, goals, copy_s=m["copy"].values, lineage_copy_s=m["lineage"].values,
        warm_s=m["warm"].values, cold_s=m["cold"].values,
        no_server_s=m["bare"].values if m["bare"] else [],
    )  # fmt: skip


if __name__ == "__main__":
    main()
