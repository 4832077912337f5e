"""Shared setup of the benchmarks: data files, identical hypertables, the `psql \\copy` baseline,
fresh (uncached) runs, stage counts, figures and the goal rows `bench.run` writes to RESULTS.md.

Each benchmark keeps its own data under `$SLUICE_HOME/bench/` with contents of its own (a seed
no one else uses): the ledger and the stage caches are keyed by content, so a file another
engineer's script loads at the same time would otherwise make our runs `duplicate` or `Cached`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from sluice.settings import get_settings

# The stages every run of a new file must execute; a cached stage does not run (no count).
STAGES = (
    "fingerprint",
    "read",
    "infer_schema",
    "profile",
    "validate",
    "enrich",
    "transform",
    "load",
)

COLUMNS = (
    "ts timestamptz NOT NULL, device bigint, category text, a double precision, "
    "b double precision, c double precision, d double precision, note text"
)


def data_dir() -> Path:
    folder = get_settings().home / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_csv(path: Path, rows: int, seed: int = 42) -> Path:
    """ISO timestamps with Z, an int, a category, 4 floats, a short text: 8 columns. Written
    beside and renamed into place, so a reader never sees half a file."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cats = ["alpha", "bravo", "charlie", "delta", "echo"]
    partial = path.with_suffix(".partial")
    with partial.open("w") as out:
        out.write("ts,device,category,a,b,c,d,note\n")
        for i in range(rows):
            ts = (start + timedelta(seconds=i * 3)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(
                f"{ts},{i % 500},{cats[i % 5]},{rng.random():.6f},{rng.random() * 100:.3f},"
                f"{rng.gauss(0, 1):.5f},{i * 0.5},n{i % 9973}\n"
            )
    partial.rename(path)
    return path


def ensure_csv(rows: int, seed: int, prefix: str = "bench") -> Path:
    """The benchmark's CSV of `rows` rows, generated once and reused."""
    path = data_dir() / f"{prefix}-{rows}-s{seed}.csv"
    return path if path.exists() else make_csv(path, rows, seed)


def connect() -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(get_settings().dsn(), autocommit=True)


def drop_table(conn: psycopg.Connection[Any], table: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", table)))


def forget_file(conn: psycopg.Connection[Any], file_id: str) -> None:
    """Make the next run of this content a new one: `sluice forget` (its rows and ledger row,
    its Redis state in this sink, its staging)."""
    from sluice import ledger

    del conn  # forget_everywhere opens its own connection: one transaction of its own
    ledger.forget_everywhere(get_settings(), file_id)


def forget_dataset(conn: psycopg.Connection[Any], dataset: str) -> None:
    """Drop a benchmark's table and its ledger rows."""
    drop_table(conn, dataset)
    if conn.execute("SELECT to_regclass('sluice.files')").fetchone() != (None,):
        conn.execute("DELETE FROM sluice.files WHERE dataset = %s", (dataset,))


def hypertable(
    conn: psycopg.Connection[Any], table: str, columns: str = COLUMNS, time_column: str = "ts"
) -> None:
    """A fresh hypertable with 7-day chunks, Sluice's default chunk interval."""
    drop_table(conn, table)
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier("public", table), sql.SQL(columns))
    )
    conn.execute(
        "SELECT create_hypertable(%s, by_range(%s, '7 days'::interval))",
        (f"public.{table}", time_column),
    )


def psql_copy(path: Path, table: str, options: str = "csv header") -> float:
    """Seconds of one `psql \\copy` of the file (psql's start included, as in a shell loop)."""
    started = time.perf_counter()
    subprocess.run(
        [
            "psql",
            get_settings().dsn(),
            "-q",
            "-c",
            f"\\copy public.{table} FROM '{path}' {options}",
        ],
        check=True,
    )
    return time.perf_counter() - started


def stage_counts(metrics_text: str | None = None) -> dict[str, float]:
    """How many times each stage ran: from this process's metrics, or a /metrics page's text."""
    from prometheus_client.parser import text_string_to_metric_families

    if metrics_text is None:
        from prometheus_client import REGISTRY, generate_latest

        metrics_text = generate_latest(REGISTRY).decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "sluice_stage_seconds_count":
                counts[sample.labels["stage"]] = sample.value
    return counts


def uncached(before: dict[str, float], after: dict[str, float], files: int) -> list[str]:
    """The stages that did not run once per file between two counts (cached, or failed), each
    with the times it ran: `read x0`."""
    ran = {s: after.get(s, 0) - before.get(s, 0) for s in STAGES}
    return [f"{s} x{n:g}" for s, n in ran.items() if n != files]


def rounds_within(rounds: int, budget_s: float | None) -> Iterator[int]:
    """Round numbers up to `rounds`; none after the first that would end past `budget_s`
    (judged by the longest round so far), so a slow engine still finishes in its time."""
    started, longest = time.perf_counter(), 0.0
    for n in range(rounds):
        elapsed = time.perf_counter() - started
        if n and budget_s is not None and elapsed + longest > budget_s:
            print(f"(stopping after {n} of {rounds} rounds: time budget {budget_s:.0f} s)")
            return
        yield n
        longest = max(longest, time.perf_counter() - started - elapsed)


@dataclass(frozen=True)
class CliRun:
    """One `sluice ingest` in a new process: seconds, peak RSS, the stages its run's summary
    lists, its outcome line and what it said on stderr (a start line, notes)."""

    seconds: float
    peak_rss: int
    stages: tuple[str, ...]
    line: str
    stderr: str = ""


def sluice_cli(path: Path, dataset: str) -> CliRun:
    """`sluice ingest PATH --dataset DATASET` in a new process, as a person's shell runs it, of a
    file not loaded before (ledger row and cached results deleted first). Which stages ran: the
    seconds per stage in its run's summary artifact, read back from the Prefect API."""
    from sluice.read import fingerprint

    with connect() as conn:
        drop_table(conn, dataset)
        forget_file(conn, fingerprint(path)[0])
    sluice = str(Path(sys.executable).with_name("sluice"))
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sluice, "ingest", str(path), "--dataset", dataset],
            stdout=subprocess.PIPE, stderr=err, text=True, env=shell_env(),
        )  # fmt: skip
        assert proc.stdout is not None
        output = proc.stdout.read()  # until it exits; wait4 then reaps it with its resource usage
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.stdout.close()
        err.seek(0)
        said = err.read()
    if os.waitstatus_to_exitcode(status) != 0 or not output.startswith("loaded"):
        raise SystemExit(f"sluice ingest of {path} did not load it:\n{output}\n{said[-3000:]}")
    stages = summary_stages(dataset, path.name)
    return CliRun(seconds, usage.ru_maxrss * 1024, stages, output.strip(), said)


def shell_env() -> dict[str, str]:
    """This environment as a person's shell has it: without what in-process runs of the CLI's
    functions set here (Prefect's console levels, PREFECT_API_URL pointed at our server)."""
    ours = get_settings().prefect_api_url
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_LOGGING_HANDLERS_")
        and not (k == "PREFECT_API_URL" and v == ours)
    }


def prefect_api() -> str:
    """The Prefect API the benchmarks' runs go to."""
    return os.environ.get("PREFECT_API_URL") or get_settings().prefect_api_url


def summary_stages(dataset: str, name: str) -> tuple[str, ...]:
    """The stages (with seconds) in the summary artifact of the newest `ingest-file/<dataset>/
    <name>` run: every stage that ran in that run, whichever process ran it."""
    import httpx

    api = prefect_api()
    runs = httpx.post(
        f"{api}/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": [f"ingest-file/{dataset}/{name}"]}},
              "sort": "START_TIME_DESC", "limit": 1},
    ).raise_for_status().json()  # fmt: skip
    if not runs:
        return ()
    wanted = {"flow_run_id": {"any_": [runs[0]["id"]]}, "key": {"like_": "summary"}}
    found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": wanted})
    text = "\n".join(str(a.get("data") or "") for a in found.raise_for_status().json())
    table = text.partition("| stage | seconds |")[2].partition("\n\n")[0]  # tasks/observe.py
    return tuple(re.findall(r"^\| (\w+) \| \d+\.\d+ \|$", table, flags=re.MULTILINE))


def services(command: str, *names: str) -> int:
    """`scripts/services.sh COMMAND NAMES` on the benchmarks' SLUICE_HOME; its exit status."""
    from bench import PROJECT_ROOT

    script = str(PROJECT_ROOT / "scripts" / "services.sh")
    env = {**shell_env(), "SLUICE_HOME": str(get_settings().home)}
    return subprocess.run(["bash", script, command, *names], env=env).returncode


@dataclass(frozen=True)
class Figures:
    """Several rounds of one measure: median, min, max."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, unit: str = "s", digits: int = 2) -> str:
        spread = f" ({min(self.values):.{digits}f}-{max(self.values):.{digits}f})"
        return f"{self.median:.{digits}f} {unit}" + (spread if len(self.values) > 1 else "")


def goal(
    name: str,
    measured: str,
    baseline: str,
    ratio: float | None,
    target: str,
    met: bool,
    **details: Any,
) -> dict[str, Any]:
    """One row of RESULTS.md's table."""
    return dict(
        name=name, measured=measured, baseline=baseline, ratio=ratio, target=target, met=met,
        details=details,
    )  # fmt: skip


def parser_for(doc: str, rounds: int | None = None) -> argparse.ArgumentParser:
    """A benchmark's options: `--json` (for bench.run), and `--rounds`, `--budget-s` when it
    has rounds; the module docstring's first line describes it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds)
        parser.add_argument("--budget-s", type=float, help="start no round that would end later")
    parser.add_argument("--json", help="also write the figures here (for bench.run)")
    return parser


def write_json(path: str | None, goals: list[dict[str, Any]], **figures: Any) -> None:
    """`--json PATH`: what `bench.run` collects from this benchmark."""
    if path:
        Path(path).write_text(json.dumps({"goals": goals, "figures": figures}, indent=1))
