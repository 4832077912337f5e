"""What the commands print: the consoles, each command's lines and tables, the progress bars.

stdout carries what a script reads (a line per file, a table, JSON); stderr the rest (notes,
summaries, progress), so `sluice ingest ... > out.txt` keeps one line per file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from sluice.contracts import FileOutcome
from sluice.settings import Settings

if TYPE_CHECKING:
    from sluice.state.dlq import Letter, Replayed
    from sluice.status import DatasetStatus

out = Console()
err = Console(stderr=True)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


def print_outcome(outcome: FileOutcome) -> None:
    file_id = outcome.file_id[:12] if outcome.file_id else "-"
    out.print(
        f"{outcome.outcome:<11} {outcome.rows:>10,} rows  {file_id:<12}  "
        f"{outcome.seconds:6.2f}s  {outcome.path}"
        + (f" -> {outcome.table}" if outcome.table else ""),
        highlight=False,
        soft_wrap=True,
    )
    if outcome.message:
        prefix = "note: " if outcome.outcome in ("loaded", "duplicate") else ""
        err.print(f"{prefix}{outcome.message}", highlight=False, soft_wrap=True)


def outcome_dict(outcome: FileOutcome) -> dict[str, Any]:
    return {**asdict(outcome), "seconds": round(outcome.seconds, 3)}


def print_summary(outcomes: list[FileOutcome]) -> None:
    """Per outcome: files, rows, seconds (stderr: stdout stays one line per file)."""
    table = Table("outcome", "files", "rows", "seconds", title="Summary")
    for kind in ("loaded", "duplicate", "quarantined", "failed"):
        chosen = [o for o in outcomes if o.outcome == kind]
        if chosen:
            rows = sum(o.rows for o in chosen)
            spent = sum(o.seconds for o in chosen)
            table.add_row(kind, str(len(chosen)), f"{rows:,}", f"{spent:.2f}")
    err.print(table)


def age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def show_letter(letter: Letter) -> None:
    rows = {"when": letter.when, **letter.as_dict()}
    rows.pop("at")
    for name, value in rows.items():
        out.print(f"{name:<12} {value}", highlight=False, soft_wrap=True)


def print_replayed(item: Replayed) -> None:
    file_id = item.file_id[:12] or "-"
    out.print(
        f"{item.outcome:<11} {item.rows:>10,} rows  {file_id:<12}  {item.letter}  {item.file}",
        highlight=False,
        soft_wrap=True,
    )
    if item.message:
        prefix = "note: " if item.outcome in ("loaded", "duplicate") else ""
        err.print(f"{prefix}{item.message}", highlight=False, soft_wrap=True)


def show_landed(settings: Settings) -> None:
    from sluice import demo as sample

    table = Table("dataset", "hypertable", "files", "rows", "chunks", title="What landed")
    for row in sample.landed(settings):
        table.add_row(*(str(v) for v in row))
    out.print(table)


class Bars:
    """One progress bar per file on stderr (bytes read, rows loaded); only on a terminal."""

    def __init__(self, paths: list[Path]) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:>12,} rows  {task.fields[stage]}"),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        )
        self.tasks = {
            str(p): self.progress.add_task(p.name, total=_size(p), rows=0, stage="", start=False)
            for p in paths
        }

    def __enter__(self) -> Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def start(self, path: Path) -> None:
        self.progress.start_task(self.tasks[str(path)])
        self.progress.update(self.tasks[str(path)], stage="reading")

    def advance(self, path: str, kind: str, amount: int) -> None:
        task = self.tasks.get(path)
        if task is None:
            return
        if kind == "bytes":
            self.progress.update(task, completed=amount, stage="checking")
        else:
            self.progress.update(task, rows=amount, stage="loading")

    def finish(self, path: Path, outcome: FileOutcome) -> None:
        task = self.tasks[str(path)]
        total = self.progress.tasks[task].total
        self.progress.update(task, completed=total, rows=outcome.rows, stage=outcome.outcome)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def print_status(found: list[DatasetStatus]) -> None:
    """`sluice status`'s table: a row per dataset."""
    table = Table(title="Datasets (loaded, quarantined, rows: today)")
    table.add_column("dataset", no_wrap=True)
    for name in ("loaded", "quarantined", "rows"):
        table.add_column(name, justify="right", no_wrap=name == "rows", overflow="fold")
    table.add_column("last load")
    for name in ("waiting", "lag", "running", "dead"):  # inbox lag, runs in flight, letters
        table.add_column(name, justify="right")
    for s in found:
        last = s.last_load.astimezone().strftime("%m-%d %H:%M") if s.last_load else "-"
        lag = age(s.inbox_lag_s) if s.inbox_lag_s is not None else "-"
        cells = (s.loaded_today, s.quarantined_today, f"{s.rows_today:,}", last, s.waiting)
        table.add_row(s.dataset, *map(str, cells), lag, str(s.in_flight), str(s.dead_letters))
    out.print(table if found else "no datasets yet: `sluice ingest FILE` or `sluice demo`")


def print_rules(found: list[dict[str, str]], rules_file: Path) -> None:
    """`sluice datasets`'s table: a row per dataset with rules or a suite of its own."""
    base = rules_file.parent
    table = Table(title=f"Dataset rules ({rules_file})")
    for name in found[0] if found else ():
        table.add_column(
            name,
            no_wrap=name == "dataset",
            overflow="fold" if name == "suite" else "ellipsis",  # a path is read whole
        )
    for row in found:
        table.add_row(*row.values())
    out.print(
        table
        if found
        else f"no rules in {rules_file} and no suites in {base / 'expectations'}: "
        "every dataset has defaults",
        soft_wrap=True,
    )
    err.print("A dataset not listed: time column and types detected, chunks of 7 days, UTC.")


def print_letters(found: list[Letter]) -> None:
    """`sluice dlq list`'s table: the newest letter of each quarantined file."""
    table = Table(title="Dead letters")
    for name in ("id", "when", "dataset", "file", "stage", "error"):
        table.add_column(name, no_wrap=name in ("id", "when"))
    table.add_column("message", ratio=1)
    for letter in found:
        cells = (letter.dataset, letter.name, letter.stage, letter.error, letter.message)
        table.add_row(letter.id, letter.when, *cells)
    out.print(table if found else "no dead letters")
