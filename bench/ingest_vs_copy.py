"""Benchmark: `sluice ingest` of an N-row CSV against `psql \\copy` of the same file into an
identical hypertable, side by side in one run (medians of several alternating rounds).

    .venv/bin/python -m bench.ingest_vs_copy --rows 1000000 --rounds 3

Needs the local services (`bash scripts/services.sh up`). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from sluice.settings import get_settings

COLUMNS = (
    "ts timestamptz NOT NULL, device bigint, category text, a double precision, "
    "b double precision, c double precision, d double precision, note text"
)


def make_csv(path: Path, rows: int) -> None:
    """ISO timestamps with Z, an int, a category, 4 floats, a short text: 8 columns."""
    rng = random.Random(42)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cats = ["alpha", "bravo", "charlie", "delta", "echo"]
    with path.open("w") as out:
        out.write("ts,device,category,a,b,c,d,note\n")
        for i in range(rows):
            ts = (start + timedelta(seconds=i * 3)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(
                f"{ts},{i % 500},{cats[i % 5]},{rng.random():.6f},{rng.random() * 100:.3f},"
                f"{rng.gauss(0, 1):.5f},{i * 0.5},n{i % 9973}\n"
            )


def reset(conn: psycopg.Connection, table: str, file_id: str | None = None) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))
    if file_id and conn.execute("SELECT to_regclass('sluice.files')").fetchone() != (None,):
        conn.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))


def psql_copy(dsn: str, conn: psycopg.Connection, path: Path) -> float:
    reset(conn, "bench_copy")
    conn.execute(sql.SQL("CREATE TABLE public.bench_copy ({})").format(sql.SQL(COLUMNS)))
    conn.execute(
        "SELECT create_hypertable('public.bench_copy', by_range('ts', '7 days'::interval))"
    )
    started = time.perf_counter()
    subprocess.run(
        ["psql", dsn, "-q", "-c", f"\\copy public.bench_copy FROM '{path}' csv header"], check=True
    )
    return time.perf_counter() - started


def sluice_ingest(conn: psycopg.Connection, path: Path) -> tuple[float, int]:
    from sluice.cli import run_files
    from sluice.read import fingerprint

    file_id, _ = fingerprint(path)
    reset(conn, "bench_sluice", file_id)
    started = time.perf_counter()
    [outcome] = run_files([path], "bench_sluice")
    seconds = time.perf_counter() - started
    if outcome.outcome != "loaded":
        raise SystemExit(f"sluice ingest did not load {path}: {outcome}")
    return seconds, outcome.rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = get_settings()
    data = settings.home / "bench"
    data.mkdir(parents=True, exist_ok=True)
    path = data / f"bench-{args.rows}.csv"
    if not path.exists():
        make_csv(path, args.rows)
    with psycopg.connect(settings.dsn(), autocommit=True) as conn:
        warm = data / "warmup.csv"
        make_csv(warm, 1000)
        started = time.perf_counter()
        sluice_ingest(conn, warm)
        cold = time.perf_counter() - started
        copies, ingests = [], []
        for _ in range(args.rounds):
            copies.append(psql_copy(settings.dsn(), conn, path))
            seconds, rows = sluice_ingest(conn, path)
            ingests.append(seconds)
        for table in ("bench_copy", "bench_sluice"):
            reset(conn, table)
    size_mb = path.stat().st_size / 1e6
    copy_s, ingest_s = statistics.median(copies), statistics.median(ingests)
    print(f"file: {args.rows:,} rows, {size_mb:.0f} MB, {args.rounds} rounds (median, min-max)")
    print(f"first run in process (1,000 rows, imports + Prefect start): {cold:.2f} s")
    print(
        f"psql \\copy into hypertable : {copy_s:6.2f} s  ({min(copies):.2f}-{max(copies):.2f})"
        f"  {args.rows / copy_s:>9,.0f} rows/s"
    )
    print(
        f"sluice ingest (all stages) : {ingest_s:6.2f} s  ({min(ingests):.2f}-{max(ingests):.2f})"
        f"  {args.rows / ingest_s:>9,.0f} rows/s"
    )
    print(f"ratio sluice / psql        : {ingest_s / copy_s:6.2f}")


if __name__ == "__main__":
    main()
