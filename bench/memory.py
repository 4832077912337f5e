"""Benchmark: peak RSS of `sluice ingest` on a ~0.5 GB and a ~2 GB CSV (target: ratio <= 1.2).

    .venv/bin/python -m bench.memory            # sizes 0.5 and 2 GB
    .venv/bin/python -m bench.memory --gb 0.1 0.4

Each ingest runs in a fresh process (the CLI, against the local Prefect server when it is up);
its peak resident set comes from wait4(). Needs the local services. Prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.read import fingerprint
from sluice.settings import PROJECT_ROOT, get_settings

ROW_BYTES = 74  # about, for the columns below
CHUNK = 1_000_000


def _chunk(start: int, rows: int, rng: np.random.Generator) -> pa.Table:
    seconds = np.arange(start, start + rows, dtype=np.int64) * 3 + 1_704_067_200
    cats = np.array(["alpha", "bravo", "charlie", "delta", "echo"])
    return pa.table(
        {
            "ts": pa.array(seconds * 1_000_000, pa.timestamp("us", "UTC")),
            "device": pa.array(np.arange(start, start + rows) % 500),
            "category": pa.array(cats[np.arange(rows) % 5]),
            "a": pa.array(np.round(rng.random(rows), 6)),
            "b": pa.array(np.round(rng.random(rows) * 100, 3)),
            "c": pa.array(np.round(rng.normal(size=rows), 5)),
            "d": pa.array(np.arange(start, start + rows) * 0.5),
            "note": pa.array(np.char.add("n", (np.arange(rows) % 9973).astype(str))),
        }
    )


def make_csv(path: Path, gb: float) -> int:
    rows = int(gb * 1e9 / ROW_BYTES)
    rng = np.random.default_rng(42)
    with pacsv.CSVWriter(str(path), _chunk(0, 1, rng).schema) as writer:
        for start in range(0, rows, CHUNK):
            writer.write_table(_chunk(start, min(CHUNK, rows - start), rng))
    return rows


def reset(dsn: str, dataset: str, path: Path) -> None:
    file_id, _ = fingerprint(path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS public.{dataset}")  # bench-only, fixed names
        if conn.execute("SELECT to_regclass('sluice.files')").fetchone() != (None,):
            conn.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))


def ingest_peak(path: Path, dataset: str) -> tuple[float, int, str]:
    """Seconds, peak RSS in bytes of the ingest process, and its output line."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(PROJECT_ROOT / ".venv" / "bin" / "sluice"), "ingest", str(path), "--dataset", dataset],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    output = proc.stdout.read().strip() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest of {path} failed: {output}")
    return seconds, usage.ru_maxrss * 1024, output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, nargs="+", default=[0.5, 2.0])
    args = parser.parse_args()
    settings = get_settings()
    folder = settings.home / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for gb in args.gb:
        path = folder / f"memory-{gb:g}gb.csv"
        rows = make_csv(path, gb) if not path.exists() else sum(1 for _ in path.open()) - 1
        dataset = f"bench_mem_{str(gb).replace('.', '_')}"
        reset(settings.dsn(), dataset, path)
        seconds, peak, line = ingest_peak(path, dataset)
        results.append((gb, path.stat().st_size, rows, seconds, peak))
        reset(settings.dsn(), dataset, path)
        print(line, flush=True)
    print(f"{'file':>8} {'bytes':>14} {'rows':>12} {'seconds':>8} {'rows/s':>9} {'peak RSS':>9}")
    for gb, size, rows, seconds, peak in results:
        print(
            f"{gb:>6g}GB {size:>14,} {rows:>12,} {seconds:>8.1f} {rows / seconds:>9,.0f} "
            f"{peak / 1e6:>7.0f}MB"
        )
    if len(results) > 1:
        print(
            f"peak RSS ratio largest/smallest: {results[-1][4] / results[0][4]:.2f} (target <= 1.2)"
        )


if __name__ == "__main__":
    main()
