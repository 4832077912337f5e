"""Benchmark (goals 2 and 4): how fast `sluice serve` turns small arriving files into committed
rows, against a bare COPY of the same rows.

Starts one `sluice serve` on a fresh SLUICE_HOME (its own inbox and metrics port, the running
local services; it refuses to run beside another serve on the same Prefect server, which could
take its runs), sends one warm-up file, then:

2. throughput: per round, M new files of R rows are renamed into the inbox at once; measured
   from the first rename until the last ledger row is visible: files/s. Baseline, same round:
   the same files COPYed one after another into an identical hypertable over one psycopg
   connection, one transaction per file (and, for reference, a shell loop of `psql \\copy`).
   Per-file overhead = (Sluice's seconds - the COPY's seconds) / M. Goal: >= 10 files/s.
4. freshness: a new file every 1/rate s (2 files/s) for D seconds; each file's latency runs
   from its rename into the inbox (the file is complete) to the moment its ledger row,
   written in the load's transaction, is visible to a poll every 50 ms: p50, p95, p99, max.
   Baseline: the bare COPY of one such file (p99 of the throughput baseline's files). Goal:
   p99 < 5 s.

The sensor's quiet period is the engine's default (`SLUICE_SENSOR_QUIET_S`; `--quiet-s` to
change it). Serve's /metrics show that every stage ran once per file (nothing cached).

    .venv/bin/python -m bench.serve_latency [--files 500] [--rows 1000] [--rounds 3]
                                            [--rate 2] [--duration 120]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg import sql

from bench.common import (
    Figures,
    connect,
    drop_table,
    forget_dataset,
    goal,
    parser_for,
    psql_copy,
    rounds_within,
    stage_counts,
    uncached,
    write_json,
)
from sluice.load import ensure_catalog
from sluice.read import fingerprint
from sluice.settings import get_settings
from tests.data import weather_csv

SLUICE = str(Path(sys.executable).with_name("sluice"))
DATASET, COPY_TABLE = "bench_small", "bench_small_copy"
USER_COLUMNS = ("timestamp", "station_id", "air_temp_c", "humidity", "note")


def other_serves(api: str) -> list[int]:
    """Pids of `sluice serve` processes on the same Prefect server (they could take our runs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            env = dict(
                e.split(b"=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e
            )
        except OSError:
            continue
        if not (len(argv) > 1 and b"serve" in argv and any(a.endswith(b"sluice") for a in argv)):
            continue
        theirs = env.get(b"PREFECT_API_URL") or env.get(b"SLUICE_PREFECT_API_URL") or api.encode()
        if theirs.decode().rstrip("/") == api.rstrip("/"):
            found.append(int(proc.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`sluice serve` on a fresh home, stopped (SIGTERM, by pid) on exit."""

    def __init__(self, concurrency: int, quiet_s: float | None) -> None:
        settings = get_settings()
        self.api = os.environ.get("PREFECT_API_URL", settings.prefect_api_url)
        if pids := other_serves(self.api):
            raise SystemExit(f"another sluice serve on {self.api} (pid {pids}): stop it first")
        os.environ["PREFECT_API_URL"] = self.api  # for this process's client too
        self.home = Path(tempfile.mkdtemp(prefix="sluice-bench-serve-"))
        self.inbox = self.home / "inbox" / DATASET
        self.port = free_port()
        self.env = {
            **os.environ, "SLUICE_HOME": str(self.home), "PREFECT_API_URL": self.api,
            "SLUICE_METRICS_PORT": str(self.port), "SLUICE_METRICS_ADDR": "127.0.0.1",
        }  # fmt: skip
        if quiet_s is not None:
            self.env["SLUICE_SENSOR_QUIET_S"] = str(quiet_s)
        self.concurrency = concurrency
        self.log = self.home / "serve.log"

    def __enter__(self) -> Serve:
        self.inbox.mkdir(parents=True)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [SLUICE, "serve", "--concurrency", str(self.concurrency)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        while "watching" not in self.log.read_text():
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if left := cancel_runs(str(self.home)):
            print(f"cancelled {left} ingest-file runs of this benchmark serve had not started")
        shutil.rmtree(self.home, ignore_errors=True)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            return str(page.read().decode())

    def settle(self, timeout_s: float = 300.0) -> dict[str, float]:
        """Stage counts once no run is in flight or due: a commit is visible before its load
        stage is counted, and runs others left queued on the server would run in our round."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            text = self.metrics()
            idle = "sluice_runs_in_flight 0.0" in text
            if idle and due_runs() == 0:
                return stage_counts(text)
            time.sleep(0.5)
        print(f"warning: serve still busy after {timeout_s:.0f} s (runs queued by others?)")
        return stage_counts(self.metrics())

    def prepare(self, count: int, rows: int, prefix: str) -> list[tuple[Path, str]]:
        """New files (unique contents) beside the inbox, with their file ids."""
        folder = self.home / "drop"
        made = []
        for i in range(count):
            path = weather_csv(folder / f"{prefix}{i:04}.csv", rows=rows)
            made.append((path, fingerprint(path)[0]))
        return made

    def drop(self, path: Path) -> Path:
        """Rename the complete file into the inbox (atomic: the sensor never sees it partial)."""
        return path.rename(self.inbox / path.name)


def _waiting(due_only: bool = False) -> tuple[Any, Any]:
    """Filters: ingest-file runs not started yet (scheduled or pending; due ones only)."""
    from prefect.client.schemas import filters as f
    from prefect.client.schemas.objects import StateType

    waiting = f.FlowRunFilter(
        state=f.FlowRunFilterState(
            type=f.FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
        ),
        next_scheduled_start_time=f.FlowRunFilterNextScheduledStartTime(before_=datetime.now(UTC))
        if due_only
        else None,
    )
    return waiting, f.DeploymentFilter(name=f.DeploymentFilterName(any_=["ingest-file"]))


def due_runs() -> int:
    """ingest-file runs on the server that are due and not started (ours or left by others)."""
    from prefect.client.orchestration import get_client

    due, deployment = _waiting(due_only=True)
    with get_client(sync_client=True) as client:  # PREFECT_API_URL: set by Serve
        return client.count_flow_runs(flow_run_filter=due, deployment_filter=deployment)


def cancel_runs(home: str) -> int:
    """Cancel the ingest-file runs of files below `home` still waiting on the server (a serve
    stopped with a backlog): the next serve on the server would otherwise take them."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    waiting, deployment = _waiting()
    with get_client(sync_client=True) as client:
        runs, page = [], [None]
        while len(page) and len(runs) % 200 == 0:  # the API's pages hold at most 200 runs
            page = client.read_flow_runs(
                flow_run_filter=waiting, deployment_filter=deployment, limit=200, offset=len(runs)
            )
            runs += page
        ours = [r for r in runs if str(r.parameters.get("path", "")).startswith(home)]
        for run in ours:
            client.set_flow_run_state(run.id, Cancelled(message="benchmark ended"), force=True)
    return len(ours)


class Ledger(threading.Thread):
    """Polls sluice.files for the expected file ids; `seen[id]` = when its row was visible."""

    def __init__(self, every_s: float) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def expect(self, file_id: str) -> None:
        with self.lock:
            self.pending.add(file_id)

    def run(self) -> None:
        with connect() as conn:
            while not self.stopped.wait(self.every_s):
                with self.lock:
                    ids = list(self.pending)
                if not ids:
                    continue
                rows = conn.execute(
                    "SELECT file_id FROM sluice.files WHERE file_id = ANY(%s)", (ids,)
                ).fetchall()
                now = time.time()
                with self.lock:
                    for (file_id,) in rows:
                        self.seen[file_id] = now
                        self.pending.discard(file_id)

    def stop(self) -> None:
        self.stopped.set()
        self.join()

    def wait(self, timeout_s: float) -> bool:
        """True once nothing is pending; False at the timeout."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.lock:
                if not self.pending:
                    return True
            time.sleep(0.05)
        return False


def warm_up(serve: Serve, rows: int) -> None:
    """The first run of a process imports what later runs reuse; it also creates the table."""
    ledger = Ledger(0.1)
    ledger.start()
    ((path, file_id),) = serve.prepare(1, rows, "warm")
    ledger.expect(file_id)
    serve.drop(path)
    if not ledger.wait(600):
        raise SystemExit(f"warm-up file not committed in 600 s; see {serve.log}")
    ledger.stop()


def throughput_round(
    serve: Serve, files: int, rows: int, n: int, timeout_s: float
) -> dict[str, Any]:
    """Files/s of one batch dropped at once; at the timeout, of the files committed by then."""
    batch = serve.prepare(files, rows, f"tp{n}-")
    ledger = Ledger(0.2)
    for _, file_id in batch:
        ledger.expect(file_id)
    ledger.start()
    before = serve.settle()
    started = time.time()
    dropped = [serve.drop(path) for path, _ in batch]
    done = ledger.wait(timeout_s)
    ledger.stop()
    seconds = (max(ledger.seen.values()) if done else time.time()) - started
    rate = len(ledger.seen) / seconds
    not_run = uncached(before, serve.settle(), files) if done else ["(timed out)"]
    copy_s, per_file = copy_files(dropped)
    return dict(
        seconds=seconds, rate=rate, committed=len(ledger.seen), copy_s=copy_s,
        copy_per_file=per_file, psql_s=psql_loop(dropped), not_run=not_run,
    )  # fmt: skip


def copy_table() -> None:
    """The baseline's hypertable: Sluice's table's columns, types, defaults and indexes; the
    lineage columns get defaults, since a bare COPY has no lineage to give."""
    with connect() as conn:
        drop_table(conn, COPY_TABLE)
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING INDEXES)").format(
                sql.Identifier("public", COPY_TABLE), sql.Identifier("public", DATASET)
            )
        )
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ALTER _file_id SET DEFAULT 'copy', ALTER _row SET DEFAULT 0, "
                "ALTER _ingested_at SET DEFAULT now()"
            ).format(sql.Identifier("public", COPY_TABLE))
        )
        conn.execute(
            "SELECT create_hypertable(%s, by_range('timestamp', '7 days'::interval))",
            (f"public.{COPY_TABLE}",),
        )


def copy_files(paths: list[Path]) -> tuple[float, list[float]]:
    """Bare COPY of each file, one after another, one transaction each, over one connection."""
    copy_table()
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true, NULL 'NA')").format(
        sql.Identifier("public", COPY_TABLE), sql.SQL(", ").join(map(sql.Identifier, USER_COLUMNS))
    )
    per_file = []
    with connect() as conn:
        started = time.perf_counter()
        for path in paths:
            one = time.perf_counter()
            with conn.transaction(), conn.cursor().copy(statement) as copy:
                copy.write(path.read_bytes())
            per_file.append(time.perf_counter() - one)
        return time.perf_counter() - started, per_file


def psql_loop(paths: list[Path]) -> float:
    """A shell loop's way: one `psql \\copy` process per file."""
    copy_table()
    columns = ", ".join(USER_COLUMNS)
    return sum(
        psql_copy(path, f"{COPY_TABLE} ({columns})", "csv header null 'NA'") for path in paths
    )


def freshness(serve: Serve, rows: int, rate: float, duration_s: float) -> dict[str, Any]:
    """A file every 1/rate s for duration_s; latency = ledger row visible - rename."""
    batch = serve.prepare(max(1, int(rate * duration_s)), rows, "fresh-")
    ledger = Ledger(0.05)
    ledger.start()
    before = serve.settle()
    arrived: dict[str, float] = {}
    start = time.time()
    for i, (path, file_id) in enumerate(batch):
        time.sleep(max(0.0, start + i / rate - time.time()))  # on schedule, no drift
        ledger.expect(file_id)
        serve.drop(path)
        arrived[file_id] = time.time()
    done = ledger.wait(max(600.0, duration_s * 3))
    ledger.stop()
    end = time.time()  # a file never committed counts with the time waited: a lower bound
    latencies = [ledger.seen.get(i, end) - t for i, t in arrived.items()]
    not_run = uncached(before, serve.settle(), len(batch)) if done else ["(timed out)"]
    return dict(latencies=latencies, files=len(batch), committed=len(ledger.seen), not_run=not_run)


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1), inclusive method; the value itself for one sample."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with connect() as conn:
        ensure_catalog(conn)
        forget_dataset(conn, DATASET)
    try:
        with Serve(args.concurrency, args.quiet_s) as serve:
            warm_up(serve, args.rows)
            rounds = [
                throughput_round(serve, args.files, args.rows, n, args.round_timeout)
                for n in rounds_within(args.rounds, args.budget_s)
            ]
            fresh = freshness(serve, args.rows, args.rate, args.duration)
    finally:
        with connect() as conn:
            forget_dataset(conn, DATASET)
            drop_table(conn, COPY_TABLE)
    return dict(rounds=rounds, fresh=fresh, quiet_s=serve.env.get("SLUICE_SENSOR_QUIET_S"))


def report(args: argparse.Namespace, m: dict[str, Any]) -> list[dict[str, Any]]:
    rounds, n = m["rounds"], args.files
    sluice = Figures(tuple(r["rate"] for r in rounds))
    copy = Figures(tuple(n / r["copy_s"] for r in rounds))
    psql = Figures(tuple(n / r["psql_s"] for r in rounds))
    overhead = Figures(
        tuple(
            ((1 / r["rate"] if r["rate"] else float("inf")) - r["copy_s"] / n) * 1000
            for r in rounds
        )
    )
    not_run = sorted({s for r in rounds for s in r["not_run"]})
    short = [f"{r['committed']}/{n}" for r in rounds if r["committed"] < n]
    quiet = m["quiet_s"] or f"{get_settings().sensor_quiet_s} (default)"
    print(
        f"`sluice serve --concurrency {args.concurrency}`, {os.cpu_count()} cores, quiet {quiet} s"
    )
    print(f"throughput: {n} files of {args.rows} rows dropped at once, {len(rounds)} rounds")
    print(f"  sluice serve          : {sluice.show('files/s')}")
    print(f"  bare COPY (psycopg)   : {copy.show('files/s')}  (one connection, a commit per file)")
    print(f"  psql \\copy loop       : {psql.show('files/s')}  (a psql process per file)")
    print(f"  overhead per file     : {overhead.show('ms', 0)} over the bare COPY")
    if short:
        print(f"  rounds that timed out : committed {', '.join(short)} (files/s of those)")
    print("  every stage ran      : " + (f"NO, not run: {not_run}" if not_run else "yes"))
    lat, fresh = m["fresh"]["latencies"], m["fresh"]
    copies = [s for r in rounds for s in r["copy_per_file"]]
    p99, base = quantile(lat, 0.99), quantile(copies, 0.99)
    print(
        f"freshness: {fresh['files']} files of {args.rows} rows, one every {1 / args.rate:g} s; "
        f"arrival -> committed: p50 {quantile(lat, 0.5):.2f} s, p95 {quantile(lat, 0.95):.2f} s, "
        f"p99 {p99:.2f} s, max {max(lat):.2f} s ({fresh['committed']} committed); "
        f"bare COPY p99 {base:.3f} s"
    )
    print("  every stage ran      : " + (f"NO: {fresh['not_run']}" if fresh["not_run"] else "yes"))
    return [
        goal(
            f"2. many small files: {n} files x {args.rows} rows through `sluice serve`",
            sluice.show("files/s"), f"bare COPY {copy.show('files/s')}",
            copy.median / sluice.median if sluice.median else None, ">= 10 files/s",
            sluice.median >= 10 and not not_run and not short,
            overhead_ms_per_file=overhead.show("ms", 0), psql_loop=psql.show("files/s"),
            not_run=not_run,
        ),
        goal(
            f"4. freshness: p99 arrival -> committed at {args.rate:g} files/s "
            f"for {args.duration:g} s",
            f"{p99:.2f} s", f"bare COPY of one file, p99 {base:.3f} s", p99 / base, "< 5 s",
            p99 < 5 and fresh["committed"] == fresh["files"] and not fresh["not_run"],
            p50_s=round(quantile(lat, 0.5), 2), p95_s=round(quantile(lat, 0.95), 2),
            max_s=round(max(lat), 2), committed=fresh["committed"], files=fresh["files"],
            not_run=fresh["not_run"],
        ),
    ]  # fmt: skip


def main() -> None:
    parser = parser_for(__doc__, rounds=3)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2.0, help="files/s for freshness")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of arrivals")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quiet-s", type=float, help="SLUICE_SENSOR_QUIET_S (engine default)")
    parser.add_argument("--round-timeout", type=float, default=900.0, help="seconds per round")
    args = parser.parse_args()
    m = measure(args)
    goals = report(args, m)
    write_json(args.json, goals, throughput=m["rounds"], latencies=m["fresh"]["latencies"])


if __name__ == "__main__":
    main()
