"""Benchmark: files/s of `sluice worker` processes on a work pool, with one worker and with two,
and where the CPU goes while they run.

Needs a Prefect server with Sluice's deployments in the pool `sluice` (`prefect deploy
--all`; the bench runs it when ingest-file is missing or not on that pool) and the services of
the environment (SLUICE_DATABASE_URL, SLUICE_REDIS_URL, PREFECT_API_URL). Per round: M new
small files are written to a fresh inbox folder, the workers are started (and have imported
everything), then one ingest-file run per file is created through the API; measured from the
first run created until the last ledger row is visible: files/s. The CPU seconds of each
worker, of the Prefect server (its process group), of PostgreSQL and of Redis over that span
say where the time went; each tier's idle rate, measured first with no run going, is taken
off before the CPU per file (the server's background services loop whether files come or not).

    .venv/bin/python -m bench.scaleout [--files 40] [--rows 200] [--workers 1 2] [--concurrency 3]
        [--idle-s 30]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import PROJECT_ROOT
from bench.cpu import cpu_seconds
from sluice import catalog
from sluice.read import fingerprint
from sluice.settings import get_settings
from tests.data import weather_csv

SLUICE = str(Path(sys.executable).with_name("sluice"))
PREFECT = str(Path(sys.executable).with_name("prefect"))


def processes(prefect_port: str, pg_data: str, redis_port: str) -> dict[str, list[int]]:
    """pids of this environment's Prefect server (`--port`: the API process and its uvicorn
    workers; the background services, in a process of their own when the production profile
    runs them apart), PostgreSQL (the backends of the server's database `prefect*`, and the
    rest of the cluster `pg_data`: the sink) and Redis; other services are not counted."""
    found: dict[str, list[int]] = {
        "prefect API": [], "prefect services": [], "prefect's PostgreSQL": [],
        "sink PostgreSQL": [], "redis": [],
    }  # fmt: skip
    postmaster = None
    table = _table()
    port = f"--port {prefect_port}"
    servers = {p for p, _, cmd in table if "server start" in cmd and port in cmd}
    for pid, ppid, cmd in table:
        if pid in servers or (ppid in servers and "spawn_main" in cmd):
            found["prefect API"].append(pid)
        elif ppid in servers and "server services start" in cmd:
            found["prefect services"].append(pid)
        elif cmd.startswith("redis-server") and f":{redis_port}" in cmd:
            found["redis"].append(pid)
        elif "postgres" in cmd and f"-D {pg_data}" in cmd:
            postmaster = pid
    for pid, ppid, cmd in table:
        if postmaster in (pid, ppid):
            prefect_db = cmd.startswith("postgres: ") and " prefect" in cmd
            found["prefect's PostgreSQL" if prefect_db else "sink PostgreSQL"].append(pid)
    return found


def _table() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    table = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            table.append((int(entry.name), ppid, cmd))
    return table


TARGETS = (10, 100, 1_000)  # files/s of the capacity table


def capacity(cpu: dict[str, float], files: int, idle: dict[str, float]) -> list[str]:
    """Lines of the capacity table: CPU seconds per file of each tier over what it burns idle,
    and the cores it needs at each target rate (at full use, before headroom): idle cores plus
    per-file seconds times the rate. `cpu` holds the round's CPU above the idle rate."""
    head = f"  {'tier':<24} {'idle cores':>10} {'CPU s/file':>10}  "
    lines = [head + "  ".join(f"{t:>6,}/s" for t in TARGETS)]
    for tier, seconds in cpu.items():
        per, still = seconds / files, idle.get(tier, 0.0)
        cores = "  ".join(f"{still + per * t:>8.1f}" for t in TARGETS)
        lines.append(f"  {tier:<24} {still:>10.2f} {per:>10.3f}  {cores}")
    return lines


def idle_cores(seconds: float) -> dict[str, float]:
    """Cores each tier of this environment burns with no run going (the Prefect server's
    background services poll and loop), over `seconds`."""
    ports = _ports()
    before = {k: {p: cpu_seconds(p) for p in v} for k, v in processes(*ports).items()}
    time.sleep(seconds)
    return {
        k: sum(max(0.0, cpu_seconds(p) - was) for p, was in pids.items()) / seconds
        for k, pids in before.items()
    }


def _ports() -> tuple[str, str, str]:
    api_port = os.environ["PREFECT_API_URL"].rsplit(":", 1)[1].split("/")[0]
    pg_data = f"{get_settings().home}/services/pg/data"  # scripts/services.sh's cluster
    return api_port, pg_data, os.environ.get("SLUICE_REDIS_PORT", "56379")


class Api:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def __call__(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.url}/{path.lstrip('/')}"
        r = httpx.post(url, json=body, timeout=60) if body is not None else httpx.get(url)
        r.raise_for_status()
        return r.json() if r.content else None


def ensure_deployed(api: Api, env: dict[str, str]) -> str:
    """ingest-file's deployment on the pool `sluice` (prefect.yaml). One that `sluice serve`
    applied has no pool: no worker would ever take its runs, so it is deployed again."""
    try:
        found = api("deployments/name/ingest-file/ingest-file")
        if found.get("work_pool_name") == "sluice":
            return str(found["id"])
    except httpx.HTTPStatusError:
        pass
    for args in (["work-pool", "create", "sluice", "--type", "process"], ["deploy", "--all"]):
        subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=PROJECT_ROOT, check=False)
    return str(api("deployments/name/ingest-file/ingest-file")["id"])


def start_workers(n: int, concurrency: int, env: dict[str, str], logs: Path) -> list[Any]:
    procs = []
    for i in range(n):
        log = logs / f"worker-{i}.log"
        procs.append(
            subprocess.Popen(
                [SLUICE, "worker", "--name", f"bench-{i}", "--concurrency", str(concurrency)],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        )
    for i in range(n):
        while "run(s) at once" not in (logs / f"worker-{i}.log").read_text():
            time.sleep(0.2)
    return procs


def one_round(args: argparse.Namespace, workers: int, api: Api, dep: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="sluice-bench-scaleout-"))
    dataset = f"bench_scaleout_{workers}w_{int(time.time())}"
    inbox = home / "inbox" / dataset
    ids = {fingerprint(weather_csv(inbox / f"f{i:04}.csv", rows=args.rows))[0]
           for i in range(args.files)}  # fmt: skip
    env = {**os.environ, "SLUICE_HOME": str(home), "SLUICE_METRICS_PORT": "0"}
    procs = start_workers(workers, args.concurrency, env, home)
    warm = {p.pid: cpu_seconds(p.pid) for p in procs}
    ports = _ports()
    others = {k: {p: cpu_seconds(p) for p in v} for k, v in processes(*ports).items()}
    started = time.monotonic()
    for path in sorted(inbox.iterdir()):
        api(f"deployments/{dep}/create_flow_run", {"parameters": {"path": str(path)}})
    with catalog.connect(get_settings().dsn()) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM sluice.files WHERE file_id = ANY(%s)", (list(ids),)
            ).fetchone()
            if row and row[0] >= len(ids):
                break
            time.sleep(0.1)
    seconds = time.monotonic() - started
    cpu = {f"worker {i}": cpu_seconds(p.pid) - warm[p.pid] for i, p in enumerate(procs)}
    for name, pids in processes(*ports).items():  # backends that came and went are missed
        cpu[name] = sum(max(0.0, cpu_seconds(p) - others[name].get(p, 0.0)) for p in pids)
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=120)
    return {"workers": workers, "seconds": seconds, "files_s": len(ids) / seconds, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=30, help="seconds measuring idle CPU")
    args = parser.parse_args()
    api = Api(os.environ["PREFECT_API_URL"])
    dep = ensure_deployed(api, dict(os.environ))
    print(f"{args.files} files of {args.rows} rows, {args.concurrency} runs per worker, "
          f"{os.cpu_count()} cores")  # fmt: skip
    idle = idle_cores(args.idle_s)
    print("idle, no run going: " + ", ".join(f"{k} {v:.3f} cores" for k, v in idle.items()))
    for workers in args.workers:
        r = one_round(args, workers, api, dep)
        busy = ", ".join(
            f"{k} {v:.0f} s ({v / r['seconds']:.2f} cores)" for k, v in r["cpu"].items()
        )
        print(f"{workers} worker(s): {r['seconds']:.1f} s, {r['files_s']:.2f} files/s; CPU: {busy}")
        print(f"cores needed, CPU per file over idle ({args.files} files, {args.rows} rows):")
        workers_cpu = sum(v for k, v in r["cpu"].items() if k.startswith("worker"))
        tiers = {
            k: max(0.0, v - idle.get(k, 0.0) * r["seconds"])
            for k, v in r["cpu"].items()
            if not k.startswith("worker")
        }
        for line in capacity({"sluice worker(s)": workers_cpu, **tiers}, args.files, idle):
            print(line)


if __name__ == "__main__":
    main()
