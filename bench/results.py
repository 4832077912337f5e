"""What bench/RESULTS.md says: the machine, the versions, the load it ran under, the goals'
table (measured, baseline, ratio, goal, met) and each benchmark's own output."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bench import PROJECT_ROOT

PACKAGES = ("prefect", "prefect-redis", "pyarrow", "psycopg", "great-expectations")


def load_average() -> float:
    return os.getloadavg()[0]


def _first(path: str, prefix: str) -> str:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[-1].split("=", 1)[-1].strip().strip('"')
    except OSError:
        pass
    return "?"


def machine() -> dict[str, str]:
    mem_kb = _first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "CPU": _first("/proc/cpuinfo", "model name"),
        "cores": str(os.cpu_count()),
        "RAM": f"{int(mem_kb) / 1024**2:.1f} GiB" if mem_kb.isdigit() else "?",
        "kernel": platform.release(),
        "OS": _first("/etc/os-release", "PRETTY_NAME"),
    }


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def versions() -> dict[str, str]:
    """Python, PostgreSQL, TimescaleDB, the Python packages, and the commit measured."""
    import psycopg

    from bench.common import connect

    with connect() as conn:
        pg = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        tsdb = str((row.fetchone() or ["-"])[0])
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "Python": platform.python_version(),
        "PostgreSQL": pg,
        "TimescaleDB": tsdb,
        **{name: _package(name) for name in PACKAGES},
        "libpq": str(psycopg.pq.version()),
        "commit": commit or "?",
    }


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def goals_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| goal | measured | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| `bench.{run['module']}` | failed (exit {run['code']}) | | | | no |"
        for run in runs
        if run["code"] != 0 or not run["goals"]
    ]
    for g in sorted((g for run in runs for g in run["goals"]), key=lambda g: str(g["name"])):
        met = "**yes**" if g["met"] else "no"
        lines.append(
            f"| {g['name']} | {g['measured']} | {g['baseline']} | {_ratio(g['ratio'])} "
            f"| {g['target']} | {met} |"
        )
    return lines


def _details(runs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for run in runs:
        lines += [
            "",
            f"### `python -m bench.{run['module']} {' '.join(run['args'])}` "
            f"({run['seconds'] / 60:.1f} min)",
            "",
            "```",
            *run["output"],
            "```",
        ]
    return lines


def results_markdown(
    *,
    mode: str,
    started: datetime,
    runs: list[dict[str, Any]],
    versions: dict[str, str],
    load: tuple[float, float],
    started_services: list[str],
) -> str:
    minutes = (datetime.now(UTC) - started).total_seconds() / 60
    label = (
        "**quick mode** (small sizes, one round: a smoke run of the harness, not the goals' sizes)"
        if mode == "quick"
        else "full mode (the goals' sizes)"
    )
    command = "make bench QUICK=1" if mode == "quick" else "make bench"
    cores = os.cpu_count() or 1
    lines = [
        "# Benchmark results",
        "",
        f"{started:%Y-%m-%d %H:%M} UTC, {label}: `{command}`, {minutes:.0f} min.",
        f"Load average (1 min) {load[0]:.2f} before, {load[1]:.2f} after, on {cores} cores"
        + (
            " — a busy machine: read the ratios, not the absolute figures."
            if max(load) > 1
            else "."
        ),
        "Services started (and stopped) by this run: "
        + (", ".join(started_services) or "none, they were running")
        + ".",
        "",
        "## Goals (issues 8, 13 and 17)",
        "",
        *goals_table(runs),
        "",
        "Ratios: 1 = Sluice's seconds / psql's, psql measured in the same rounds (1a, 1b: met",
        "when Sluice takes at most psql's seconds + 4); 1c = seconds of the larger file / the",
        "smaller's; 2 = bare COPY's files/s / Sluice's (times slower); 3 = peak RSS of the",
        "larger file / the smaller's; 4 = Sluice's p99 / a bare COPY's. Medians of the rounds",
        "(min-max). A goal is met only if every stage ran in its runs (none cached), as each",
        "benchmark's output below says: this process's stage metrics for a warm run, the run's",
        "summary artifact (read from the Prefect API) for a new process.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine().items()],
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in versions.items()],
        "",
        "## Each benchmark's output",
        *_details(runs),
        "",
    ]
    return "\n".join(lines)
