"""Benchmark (goal 3, memory): peak RSS of `sluice ingest` on a ~0.5 GB and a ~2 GB CSV of the
big-file columns. Goal: the larger within 1.2x of the smaller (memory flat in file size); the
baseline is the smaller file's peak.

    .venv/bin/python -m bench.memory            # sizes 0.5 and 2 GB
    .venv/bin/python -m bench.memory --gb 0.1 0.4

Each ingest runs in a new process (`sluice ingest --verbose`, against the local Prefect server
when it is up); its peak resident set comes from wait4(), and its run logs show that every
stage ran (the ledger row and cached results of the file are deleted first). Needs the local
services. Prints numbers; asserts nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.common import (
    STAGES,
    CliRun,
    connect,
    data_dir,
    drop_table,
    goal,
    parser_for,
    sluice_cli,
    write_json,
)

ROW_BYTES = 74  # about, for the columns below
CHUNK = 1_000_000
SEED = 1003  # contents no other script loads (the ledger is keyed by content)


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


def make_csv(path: Path, gb: float) -> None:
    """About `gb` GB of rows, written beside and renamed into place."""
    rows = int(gb * 1e9 / ROW_BYTES)
    rng = np.random.default_rng(SEED)
    partial = path.with_suffix(".partial")
    with pacsv.CSVWriter(str(partial), _chunk(0, 1, rng).schema) as writer:
        for start in range(0, rows, CHUNK):
            writer.write_table(_chunk(start, min(CHUNK, rows - start), rng))
    partial.rename(path)


def ensure_file(gb: float) -> Path:
    path = data_dir() / f"memory-{gb:g}gb-s{SEED}.csv"
    if not path.exists():
        make_csv(path, gb)
    return path


def measure(sizes: list[float]) -> list[dict[str, Any]]:
    results = []
    for gb in sizes:
        path = ensure_file(gb)
        dataset = f"bench_mem_{str(gb).replace('.', '_')}"
        run: CliRun = sluice_cli(path, dataset)
        with connect() as conn:
            drop_table(conn, dataset)
        print(run.line, flush=True)
        rows = int(run.line.split()[1].replace(",", "")) if run.line else 0
        not_run = [s for s in STAGES if s not in run.stages]
        results.append(
            dict(gb=gb, size=path.stat().st_size, rows=rows, seconds=run.seconds,
                 peak=run.peak_rss, not_run=not_run)
        )  # fmt: skip
    return results


def report(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    print(f"{'file':>8} {'bytes':>14} {'rows':>12} {'seconds':>8} {'rows/s':>9} {'peak RSS':>9}")
    for r in results:
        print(
            f"{r['gb']:>6g}GB {r['size']:>14,} {r['rows']:>12,} {r['seconds']:>8.1f} "
            f"{r['rows'] / r['seconds']:>9,.0f} {r['peak'] / 1e6:>7.0f}MB"
        )
    not_run = sorted({s for r in results for s in r["not_run"]})
    print("every stage ran: " + (f"NO, not run: {not_run}" if not_run else "yes"))
    if len(results) < 2:
        return []
    small, large = results[0], results[-1]
    ratio = large["peak"] / small["peak"]
    print(f"peak RSS ratio largest/smallest: {ratio:.2f} (goal <= 1.2)")
    return [
        goal(
            f"3. memory: peak RSS of `sluice ingest`, {large['gb']:g} GB / {small['gb']:g} GB file",
            f"{large['peak'] / 1e6:.0f} MB", f"{small['peak'] / 1e6:.0f} MB", ratio, "<= 1.2",
            ratio <= 1.2 and not not_run,
            seconds={f"{r['gb']:g}GB": round(r["seconds"], 1) for r in results},
            rows={f"{r['gb']:g}GB": r["rows"] for r in results}, not_run=not_run,
        )
    ]  # fmt: skip


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--gb", type=float, nargs="+", default=[0.5, 2.0])
    args = parser.parse_args()
    results = measure(sorted(args.gb))
    write_json(args.json, report(results), files=results)


if __name__ == "__main__":
    main()
