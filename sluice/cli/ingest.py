"""`sluice ingest` and `sluice demo`: files through the ingest-file flow in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.render import out, outcome_dict, print_json, print_summary, show_landed
from sluice.cli.runs import run_files, runs_api
from sluice.settings import get_settings


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files to ingest.", exists=False)],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset (table) name; default: the inbox subfolder, else the file's stem."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of the files' outcomes, nothing else.")
    ] = False,
) -> None:
    """Ingest files now, in this process. Example: sluice ingest weather.csv --dataset weather

    One line per file: outcome, rows, file id, seconds, path -> table. Exit status 0 when
    every file is loaded or a duplicate, else 1.
    """
    runs = runs_api(get_settings())
    outcomes = run_files(paths, dataset, verbose, quiet=as_json, ready=runs.ready)
    if as_json:
        print_json([outcome_dict(o) for o in outcomes])
    elif len(outcomes) > 1:
        print_summary(outcomes)
    if any(o.outcome not in ("loaded", "duplicate") for o in outcomes):
        raise typer.Exit(1)


def demo(rows: Annotated[int, typer.Option(help="Rows per generated file.")] = 20_000) -> None:
    """Generate sample files, ingest them and show what landed, in a home (SLUICE_HOME/demo),
    rules and a schema (`demo`) of the demo's own: your datasets never get its rules.
    Example: sluice demo
    """
    from sluice import demo as sample

    runs = runs_api(get_settings())
    with sample.own_settings(get_settings()) as settings:
        files = sample.write_inbox(settings.inbox, rows=rows)
        out.print(f"wrote {len(files)} sample files under {settings.inbox}", soft_wrap=True)
        out.print(f"rules: {settings.datasets}", soft_wrap=True, highlight=False)
        run_files(files, None, ready=runs.ready)
        show_landed(settings)
    if api := runs.api:
        out.print(
            f"Prefect UI: {api.removesuffix('/api')}/runs "
            "(flow runs are named ingest-file/<dataset>/<file>)",
            soft_wrap=True,
        )
