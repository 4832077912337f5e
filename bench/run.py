"""`make bench`: start what the benchmarks need, run each against its baseline, and write the
dated results table to bench/RESULTS.md (machine, versions, the goals of issues 8, 13 and 17).

    .venv/bin/python -m bench.run           # full sizes (~25 min on 2 cores near the goals)
    .venv/bin/python -m bench.run --quick   # small sizes, one round: a smoke run

Starts Redis, PostgreSQL + TimescaleDB and the Prefect server with scripts/services.sh when
they are not running and stops only those at the end. Each benchmark runs as its own process
(`python -m bench.<name> ... --json FILE`), so it stays runnable alone; one that fails is a row
saying so, and the others still run. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import PROJECT_ROOT, results

SERVICES = ("redis", "postgres", "prefect")
RESULTS_MD = PROJECT_ROOT / "bench" / "RESULTS.md"

# (module, arguments) per mode; the order puts the longest (memory: 20M rows) last. Full mode:
# the goals' sizes; the time budgets stop adding rounds (at least one) when the engine is far
# from them. ingest_vs_copy's round: psql, warm, a new process with the server up and one
# without (the services script stops the server first; the command starts it again).
PLANS: dict[str, list[tuple[str, list[str]]]] = {
    "full": [
        ("ingest_vs_copy", ["--rows", "2000000", "--rounds", "3", "--budget-s", "420"]),
        (
            "serve_latency",
            [
                "--files",
                "500",
                "--rounds",
                "3",
                "--budget-s",
                "420",
                "--round-timeout",
                "600",
                "--rate",
                "2",
                "--duration",
                "120",
            ],
        ),  # fmt: skip
        ("memory", ["--rows", "2000000", "20000000"]),
    ],
    "quick": [
        ("ingest_vs_copy", ["--rows", "200000", "--rounds", "1"]),
        (
            "serve_latency",
            [
                "--files",
                "40",
                "--rounds",
                "1",
                "--rate",
                "2",
                "--duration",
                "20",
                "--lone",
                "10",
                "--floor-runs",
                "40",
            ],
        ),  # fmt: skip
        ("memory", ["--rows", "500000", "5000000"]),
    ],
}


def services(command: str, names: list[str]) -> None:
    subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "services.sh"), command, *names], check=True
    )


def stopped_services() -> list[str]:
    """The services not running now: the ones this run starts, and stops at its end."""
    script = str(PROJECT_ROOT / "scripts" / "services.sh")
    return [
        name
        for name in SERVICES
        if subprocess.run(["bash", script, "status", "--quiet", name]).returncode != 0
    ]


def run_one(module: str, args: list[str]) -> dict[str, Any]:
    """One benchmark in its own process; its output goes to the terminal and to the report."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", f"bench.{module}", *args, "--json", out.name]
        print(f"\n$ python -m bench.{module} {' '.join(args)}", flush=True)
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        code = proc.wait()
        seconds = time.perf_counter() - started
        data = json.loads(Path(out.name).read_text() or "{}") if code == 0 else {}
    printed = [line for line in lines if not line.startswith(("loaded ", "\x1b"))]
    return dict(
        module=module, args=args, code=code, seconds=seconds, goals=data.get("goals", []),
        output=printed[-40:],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--output", type=Path, default=RESULTS_MD)
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    started_at = datetime.now(UTC)
    to_stop = stopped_services()
    services("up", list(SERVICES))
    try:
        load_before = results.load_average()
        runs = [run_one(module, margs) for module, margs in PLANS[mode]]
        load_after = results.load_average()
        versions = results.versions()
    finally:
        if to_stop:
            services("down", to_stop)
    text = results.results_markdown(
        mode=mode, started=started_at, runs=runs, versions=versions,
        load=(load_before, load_after), started_services=to_stop,
    )  # fmt: skip
    args.output.write_text(text)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
