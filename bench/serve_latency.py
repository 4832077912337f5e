"""How fast `sluice serve` turns arriving files into committed rows.

Starts `sluice serve` (a fresh SLUICE_HOME, the running local services: `make services`), then
1. latency: drops N small files one at a time (each after the previous one committed) and
   measures from the moment the file appears in the inbox (an atomic rename) to the moment its
   ledger row is visible, which is when its rows are committed: p50, p95, max;
2. throughput: drops M files of R rows at once and measures until the last one is committed:
   files per minute sustained.

    .venv/bin/python -m bench.serve_latency [--latency-files 50] [--files 500] [--rows 1000]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from sluice.load import ensure_catalog
from sluice.read import fingerprint
from sluice.settings import get_settings
from tests.data import weather_csv

SLUICE = str(Path(sys.executable).with_name("sluice"))


def _committed(conn: psycopg.Connection[tuple[object, ...]], ids: set[str]) -> set[str]:
    rows = conn.execute("SELECT file_id FROM sluice.files WHERE file_id = ANY(%s)", (list(ids),))
    return {str(r[0]) for r in rows}


def _prepare(folder: Path, count: int, rows: int, prefix: str) -> list[tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        path = weather_csv(folder / f"{prefix}{i:04}.csv", rows=rows)
        made.append((path, fingerprint(path)[0]))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-files", type=int, default=50)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    settings = get_settings()
    home = Path(tempfile.mkdtemp(prefix="sluice-bench-serve-"))
    env = {**os.environ, "SLUICE_HOME": str(home), "SLUICE_SENSOR_QUIET_S": "0.3"}
    env.setdefault("PREFECT_API_URL", settings.prefect_api_url)
    log = (home / "serve.log").open("w")
    serve = subprocess.Popen(
        [SLUICE, "serve", "--concurrency", str(args.concurrency)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        while "watching" not in (home / "serve.log").read_text():
            if serve.poll() is not None:
                raise SystemExit((home / "serve.log").read_text())
            time.sleep(0.2)
        inbox = home / "inbox"
        with psycopg.connect(settings.dsn(), autocommit=True) as conn:
            ensure_catalog(conn)
            # warm-up: the first run of a process imports what later runs reuse
            (inbox / "bench_serve").mkdir(parents=True, exist_ok=True)
            ((path, file_id),) = _prepare(home / "drop", 1, args.rows, "warm")
            path.rename(inbox / "bench_serve" / path.name)
            while not _committed(conn, {file_id}):
                time.sleep(0.05)

            latencies = []
            for path, file_id in _prepare(home / "drop", args.latency_files, 100, "lat"):
                dropped = time.perf_counter()
                path.rename(inbox / "bench_serve" / path.name)
                while not _committed(conn, {file_id}):
                    time.sleep(0.02)
                latencies.append(time.perf_counter() - dropped)
            q = statistics.quantiles(latencies, n=20)
            print(
                f"latency arrival -> committed, {len(latencies)} files of 100 rows, one at a time:"
                f" p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s,"
                f" max {max(latencies):.2f} s"
            )

            batch = _prepare(home / "drop", args.files, args.rows, "tp")
            ids = {file_id for _, file_id in batch}
            started = time.perf_counter()
            for path, _ in batch:
                path.rename(inbox / "bench_serve" / path.name)
            while len(_committed(conn, ids)) < len(ids):
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            print(
                f"throughput: {args.files} files of {args.rows} rows dropped at once, all "
                f"committed in {seconds:.1f} s: {args.files / seconds * 60:.0f} files/min "
                f"({args.files / seconds:.2f} files/s, concurrency {args.concurrency}, "
                f"{os.cpu_count()} cores)"
            )
    finally:
        os.kill(serve.pid, signal.SIGTERM)
        serve.wait(timeout=120)


if __name__ == "__main__":
    main()
