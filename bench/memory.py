"""Benchmark (scale and memory): `sluice ingest` of a 2,000,000-row and a 20,000,000-row CSV of
the big-file columns, each in a new process with the Prefect server up. Goals: the larger file
takes at most 10.5 times the smaller's time (rows/s holds as the file grows), and its peak RSS
stays within 1.2 times the smaller's (memory flat in file size); the baseline is the smaller
file's run.

    .venv/bin/python -m bench.memory                      # 2,000,000 and 20,000,000 rows
    .venv/bin/python -m bench.memory --rows 500000 5000000   # both above SLUICE_FUSE_BELOW_BYTES

Each run's peak resident set comes from wait4(); the stage seconds in its run's summary
artifact (read back from the Prefect API) show that every stage ran (the ledger row and cached
results of the file are deleted first). Needs the local services. Prints numbers; asserts
nothing.
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

CHUNK = 1_000_000
SEED = 1003  # contents no other script loads (the ledger is keyed by content)
TIME_RATIO, RSS_RATIO = 10.5, 1.2  # issue 13: 10x the rows in <= 10.5x the time; flat memory


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


def make_csv(path: Path, rows: int) -> None:
    """`rows` rows, written beside and renamed into place."""
    rng = np.random.default_rng(SEED)
    partial = path.with_suffix(".partial")
    with pacsv.CSVWriter(str(partial), _chunk(0, 1, rng).schema) as writer:
        for start in range(0, rows, CHUNK):
            writer.write_table(_chunk(start, min(CHUNK, rows - start), rng))
    partial.rename(path)


def ensure_file(rows: int) -> Path:
    path = data_dir() / f"scale-{rows}-s{SEED}.csv"
    if not path.exists():
        make_csv(path, rows)
    return path


def measure(sizes: list[int]) -> list[dict[str, Any]]:
    results = []
    for rows in sizes:
        path = ensure_file(rows)
        dataset = f"bench_scale_{rows}"
        run: CliRun = sluice_cli(path, dataset)
        with connect() as conn:
            drop_table(conn, dataset)
        print(run.line, flush=True)
        loaded = int(run.line.split()[1].replace(",", ""))
        not_run = [s for s in STAGES if s not in run.stages]
        results.append(
            dict(rows=rows, loaded=loaded, size=path.stat().st_size, seconds=run.seconds,
                 peak=run.peak_rss, not_run=not_run)
        )  # fmt: skip
    return results


def report(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    print(f"{'rows':>12} {'bytes':>14} {'loaded':>12} {'seconds':>8} {'rows/s':>9} {'peak RSS':>9}")
    for r in results:
        print(
            f"{r['rows']:>12,} {r['size']:>14,} {r['loaded']:>12,} {r['seconds']:>8.1f} "
            f"{r['loaded'] / r['seconds']:>9,.0f} {r['peak'] / 1e6:>7.0f}MB"
        )
    not_run = sorted({s for r in results for s in r["not_run"]})
    print("every stage ran: " + (f"NO, not run: {not_run}" if not_run else "yes"))
    if len(results) < 2:
        return []
    small, large = results[0], results[-1]
    times, rss = large["seconds"] / small["seconds"], large["peak"] / small["peak"]
    print(f"{large['rows']:,} rows / {small['rows']:,} rows: time {times:.2f} "
          f"(goal <= {TIME_RATIO}), peak RSS {rss:.2f} (goal <= {RSS_RATIO})")  # fmt: skip
    sizes = f"{large['rows']:,} rows / {small['rows']:,} rows"
    details = dict(
        seconds={r["rows"]: round(r["seconds"], 1) for r in results},
        peak_mb={r["rows"]: round(r["peak"] / 1e6) for r in results}, not_run=not_run,
    )  # fmt: skip
    return [
        goal(
            f"1c. scale: `sluice ingest` (new process) of {sizes}, time",
            f"{large['seconds']:.1f} s", f"{small['seconds']:.1f} s", times,
            f"<= {TIME_RATIO}", times <= TIME_RATIO and not not_run, **details,
        ),
        goal(
            f"3. memory: peak RSS of `sluice ingest`, {sizes}",
            f"{large['peak'] / 1e6:.0f} MB", f"{small['peak'] / 1e6:.0f} MB", rss,
            f"<= {RSS_RATIO}", rss <= RSS_RATIO and not not_run, **details,
        ),
    ]  # fmt: skip


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 20_000_000])
    args = parser.parse_args()
    results = measure(sorted(args.rows))
    write_json(args.json, report(results), files=results)


if __name__ == "__main__":
    main()
