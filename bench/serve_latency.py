"""Benchmark (goals 2 and 4): how fast `sluice serve` turns small arriving files into committed
rows, against a bare COPY of the same rows.

Starts one `sluice serve` on a fresh SLUICE_HOME (its own inbox and metrics port, the running
local services; it refuses to run beside another serve on the same Prefect server, which could
take its runs), sends one warm-up file, then:

2. throughput: per round, M new files of R rows are renamed into the inbox at once; measured
   from the first rename until the last ledger row is visible: files/s. Baseline, same round:
   the same files COPYed one after another into an identical hypertable over one psycopg
   connection, one transaction per file (and, for reference, a shell loop of `psql \\copy`).
   Per-file overhead = (Sluice's seconds - the COPY's seconds) / M. Goal: >= 4 files/s; the
   Prefect server's (and its database's) CPU per file, from /proc: <= 0.25 s; and against
   Prefect's own floor on the same server (bench/floor.py: an async flow with one task, run
   the way serve runs a file's run): >= 0.7 of its runs/s.
4. freshness: a new file every 1/rate s (2 files/s) for D seconds; each file's latency runs
   from its rename into the inbox (the file is complete) to the moment its ledger row,
   written in the load's transaction, is visible to a poll every 50 ms: p50, p95, p99, max.
   Baseline: the bare COPY of one such file (p99 of the throughput baseline's files). Goal:
   p99 < 5 s. And a lone file dropped into an idle serve, 50 times one at a time: p50 < 1.5 s.

The sensor's quiet period is the engine's default (`SLUICE_SENSOR_QUIET_S`; `--quiet-s` to
change it). Serve's /metrics show that every stage ran once per file (nothing cached).

    .venv/bin/python -m bench.serve_latency [--files 500] [--rows 1000] [--rounds 3]
                                            [--rate 2] [--duration 120]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
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
    uncached,
    write_json,
)
from bench.cpu import postgres_cpu, process_tree_cpu
from bench.serving import Ledger, Serve
from sluice.catalog import ensure_catalog
from sluice.settings import get_settings

DATASET, COPY_TABLE = "bench_small", "bench_small_copy"
PREFECT_DB = "prefect"  # the local Prefect server's database (counted as the server's CPU)
PG_DATA = str(get_settings().home / "services" / "pg" / "data")  # the local services' cluster
USER_COLUMNS = ("timestamp", "station_id", "air_temp_c", "humidity", "note")


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
    cpu_before = serve.cpu.seconds()
    worker_before, sink_before = process_tree_cpu(serve.proc.pid), postgres_cpu(PG_DATA, PREFECT_DB)
    started = time.time()
    dropped = [serve.drop(path) for path, _ in batch]
    done = ledger.wait(timeout_s)
    ledger.stop()
    seconds = (max(ledger.seen.values()) if done else time.time()) - started
    rate = len(ledger.seen) / seconds
    not_run = uncached(before, serve.settle(), files) if done else ["(timed out)"]
    # the server's CPU until every run has ended (settled), per committed file
    committed = max(1, len(ledger.seen))
    server_cpu = (serve.cpu.seconds() - cpu_before) / committed
    worker_cpu = (process_tree_cpu(serve.proc.pid) - worker_before) / committed
    sink_cpu = (postgres_cpu(PG_DATA, PREFECT_DB) - sink_before) / committed
    copy_s, per_file = copy_files(dropped)
    return dict(
        seconds=seconds, rate=rate, committed=len(ledger.seen), copy_s=copy_s,
        copy_per_file=per_file, psql_s=psql_loop(dropped), not_run=not_run,
        server_cpu_per_file=server_cpu, worker_cpu_per_file=worker_cpu,
        sink_cpu_per_file=sink_cpu,
    )  # fmt: skip


def lone_files(serve: Serve, rows: int, count: int) -> list[float]:
    """Seconds from rename to committed of `count` files dropped one at a time into an idle
    serve (each after the previous one committed and its run ended)."""
    latencies = []
    for path, file_id in serve.prepare(count, rows, "lone-"):
        ledger = Ledger(0.02)
        ledger.expect(file_id)
        serve.settle()
        ledger.start()
        dropped = time.time()
        serve.drop(path)
        ledger.wait(120)
        ledger.stop()
        latencies.append(ledger.seen.get(file_id, time.time()) - dropped)
    return latencies


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
                "ALTER TABLE {} ALTER _load_id SET DEFAULT 0, ALTER _row SET DEFAULT 0, "
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
        with Serve(DATASET, args.concurrency, args.quiet_s) as serve:
            warm_up(serve, args.rows)
            rounds = [
                throughput_round(serve, args.files, args.rows, n, args.round_timeout)
                for n in rounds_within(args.rounds, args.budget_s)
            ]
            fresh = freshness(serve, args.rows, args.rate, args.duration)
            lone = lone_files(serve, args.rows, args.lone)
        from bench.floor import measure as floor_rate  # imports Prefect: after Serve set its API

        floor = floor_rate(args.floor_runs, args.concurrency)
    finally:
        with connect() as conn:
            forget_dataset(conn, DATASET)
            drop_table(conn, COPY_TABLE)
    return dict(
        rounds=rounds, fresh=fresh, lone=lone, floor=floor,
        quiet_s=serve.env.get("SLUICE_SENSOR_QUIET_S"),
    )  # fmt: skip


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
    floor, cpu = m["floor"], Figures(tuple(r["server_cpu_per_file"] for r in rounds))
    print(
        f"Prefect's floor (an async flow with one task, run as serve runs a file's run, same "
        f"server): {floor['rate']:.2f} runs/s, server CPU {floor['server_cpu_per_run']:.3f} s "
        f"per run; sluice serve {sluice.median / floor['rate']:.2f} of it"
    )
    print(f"  server CPU per file   : {cpu.show('s', 3)} (Prefect server + its PostgreSQL)")
    worker = Figures(tuple(r["worker_cpu_per_file"] for r in rounds))
    sink = Figures(tuple(r["sink_cpu_per_file"] for r in rounds))
    print(f"  serve CPU per file    : {worker.show('s', 3)} (sluice serve: sensor, stages, client)")
    print(f"  sink CPU per file     : {sink.show('s', 3)} (PostgreSQL but the Prefect database)")
    lone = m["lone"]
    print(
        f"a lone file into an idle serve ({len(lone)} files, one at a time): "
        f"p50 {quantile(lone, 0.5):.2f} s, max {max(lone):.2f} s"
    )
    return [
        goal(
            f"2. many small files: {n} files x {args.rows} rows through `sluice serve`",
            sluice.show("files/s"), f"bare COPY {copy.show('files/s')}",
            copy.median / sluice.median if sluice.median else None, ">= 4 files/s",
            sluice.median >= 4 and not not_run and not short,
            overhead_ms_per_file=overhead.show("ms", 0), psql_loop=psql.show("files/s"),
            not_run=not_run,
        ),
        goal(
            "2a. against Prefect's floor: files/s over an async flow's (one task) runs/s",
            sluice.show("files/s"), f"floor {floor['rate']:.2f} runs/s",
            sluice.median / floor["rate"], ">= 0.7", sluice.median / floor["rate"] >= 0.7,
            floor_runs=floor["runs"], floor_server_cpu_s=round(floor["server_cpu_per_run"], 3),
        ),
        goal(
            "2b. Prefect server + its database CPU per small file",
            cpu.show("s", 3), f"floor {floor['server_cpu_per_run']:.3f} s per run",
            cpu.median / floor["server_cpu_per_run"], "<= 0.25 s", cpu.median <= 0.25,
        ),
        goal(
            f"4a. a lone file dropped into an idle serve: p50 arrival -> committed of {len(lone)}",
            f"{quantile(lone, 0.5):.2f} s", f"bare COPY of one file, p99 {base:.3f} s",
            quantile(lone, 0.5) / base, "< 1.5 s", quantile(lone, 0.5) < 1.5,
            max_s=round(max(lone), 2),
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
    parser.add_argument("--lone", type=int, default=50, help="files dropped one at a time")
    parser.add_argument("--floor-runs", type=int, default=200, help="runs of Prefect's floor")
    args = parser.parse_args()
    m = measure(args)
    goals = report(args, m)
    write_json(args.json, goals, throughput=m["rounds"], latencies=m["fresh"]["latencies"])


if __name__ == "__main__":
    main()
