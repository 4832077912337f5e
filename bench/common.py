"""Shared setup of the benchmarks: data files, identical hypertables, the `psql \\copy` baseline,
fresh (uncached) runs, stage counts, figures and the goal rows `bench.run` writes to RESULTS.md.

Each benchmark keeps its own data under `$SLUICE_HOME/bench/` with contents of its own (a seed
no one else uses): the ledger and the stage caches are keyed by content, so a file another
engineer's script loads at the same time would otherwise make our runs `duplicate` or `Cached`.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
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
    """Make the next run of this content a new one: no ledger row, no cached stage results."""
    from sluice import checkpoints

    if conn.execute("SELECT to_regclass('sluice.files')").fetchone() != (None,):
        conn.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))
    with checkpoints.client(get_settings().redis_url.get_secret_value()) as r:
        checkpoints.forget_results(r, r.scan_iter(match=f"sluice:result:*:{file_id}:*"))


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
    """The stages that did not run once per file between two counts (cached, or failed)."""
    return [s for s in STAGES if after.get(s, 0) - before.get(s, 0) != files]


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


def write_json(path: str | None, goals: list[dict[str, Any]], **figures: Any) -> None:
    """`--json PATH`: what `bench.run` collects from this benchmark."""
    if path:
        Path(path).write_text(json.dumps({"goals": goals, "figures": figures}, indent=1))
