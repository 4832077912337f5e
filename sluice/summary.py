"""A file's run summed up in markdown (the run's summary artifact in the Prefect UI): what landed,
what changed, where the time went, and the stages' tables (profile, validation) under it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluice.contracts import FileRef, LoadReport


def summary(
    ref: FileRef,
    outcome: str,
    rows: int,
    seconds: float,
    load: LoadReport | None,
    stages: dict[str, float],
    message: str = "",
) -> str:
    """The run's markdown summary: what landed, what changed, where the time went."""
    lines = [
        f"### {Path(ref.path).name}: {outcome}",
        "",
        "| | |",
        "|---|---|",
        f"| dataset | {ref.dataset} |",
        f"| rows | {rows:,} |",
        f"| file id | `{ref.file_id}` |",
        f"| size | {ref.size:,} bytes |",
        f"| seconds | {seconds:.2f} |",
    ]
    if load is not None:
        lines += [
            f"| table | {load.table}{' (created)' if load.created else ''} |",
            f"| schema changes | {_changes(load)} |",
            f"| chunks | {load.chunks} |",
        ]
    if message:
        lines.append(f"| {'note' if outcome in ('loaded', 'duplicate') else 'error'} | "
                     f"{message.replace('|', '/')} |")  # fmt: skip
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {stage} | {spent:.3f} |" for stage, spent in stages.items()]
    if not stages:
        lines.append("| (all cached or skipped) | |")
    return "\n".join(lines) + "\n"


def tables_markdown(tables: dict[str, tuple[str, list[dict[str, Any]]]]) -> str:
    """The stages' tables (profile, validation) under the summary, as markdown."""
    parts = []
    for kind, (title, rows) in tables.items():
        parts += ["", f"#### {kind}", "", title.replace("\n", " "), ""]
        if rows:
            names = list(rows[0])
            parts.append("| " + " | ".join(names) + " |")
            parts.append("|" + "---|" * len(names))
            parts += ["| " + " | ".join(_cell(row.get(n)) for n in names) + " |" for row in rows]
    return "\n".join(parts) + ("\n" if parts else "")


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "/").replace("\n", " ")


def _changes(load: LoadReport) -> str:
    changes = [f"added {', '.join(load.added_columns)}"] if load.added_columns else []
    if load.widened_columns:
        changes.append(f"widened {', '.join(load.widened_columns)}")
    return "; ".join(changes) or "none"
