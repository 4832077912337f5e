"""The `sluice` command: the package's face, and the one engine module that reaches flows/.

Flows and Prefect are imported inside the commands that run them, so `sluice --help` stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sluice.contracts import FileOutcome, Outcome
from sluice.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

app = typer.Typer(
    help="Sluice: files in an inbox become rows in TimescaleDB hypertables.",
    no_args_is_help=True,
    add_completion=False,
)
services_app = typer.Typer(
    help="Start, stop and check the local Redis, PostgreSQL and Prefect.", no_args_is_help=True
)
app.add_typer(services_app, name="services")
out = Console()
err = Console(stderr=True)


def _use_local_prefect(settings: Settings) -> str | None:
    """Point Prefect at the project's server when it is up and nothing else was chosen."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    try:
        with urllib.request.urlopen(f"{settings.prefect_api_url}/health", timeout=1):
            pass
    except OSError:
        return None  # Prefect's ephemeral API, in this process
    os.environ["PREFECT_API_URL"] = settings.prefect_api_url
    return settings.prefect_api_url


def _quiet_prefect_console(verbose: bool) -> None:
    """Runs log to the Prefect API (the UI) in full; the terminal gets one line per file.

    A failed run's traceback goes to the terminal only with --verbose: the line for the file
    already says what failed, where, and what to do.
    """
    level = "INFO" if verbose else "CRITICAL"
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", level)


def run_files(paths: list[Path], dataset: str | None, verbose: bool = False) -> list[FileOutcome]:
    """Run `ingest_file` for each path in this process, printing each file's line as it ends."""
    _quiet_prefect_console(verbose)
    from flows.ingest_file import ingest_file

    outcomes = []
    for path in paths:
        started = time.perf_counter()
        state = ingest_file(path=str(path), dataset=dataset, return_state=True)
        outcomes.append(_outcome(path, state, time.perf_counter() - started))
        _print(outcomes[-1])
    return outcomes


def _outcome(path: Path, state: State[FileOutcome], seconds: float) -> FileOutcome:
    from sluice.errors import TerminalError

    result = state.result(raise_on_failure=False)
    if isinstance(result, FileOutcome):
        return result
    text = str(result) if isinstance(result, BaseException) else (state.message or state.name)
    kind: Outcome = "quarantined" if isinstance(result, TerminalError) else "failed"
    return FileOutcome(
        path=str(path), outcome=kind, rows=0, file_id="", seconds=seconds, message=text
    )


def _print(outcome: FileOutcome) -> None:
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


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files to ingest.", exists=False)],
    dataset: Annotated[
        str | None,
        typer.Option(
            help="Dataset (table) name; default: the inbox subfolder, else the file's stem."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Ingest files now, in this process. Example: sluice ingest weather.csv --dataset weather"""
    settings = get_settings()
    _use_local_prefect(settings)
    outcomes = run_files(paths, dataset, verbose)
    if any(o.outcome not in ("loaded", "duplicate") for o in outcomes):
        raise typer.Exit(1)


def _services(command: str, names: list[str]) -> None:
    script = PROJECT_ROOT / "scripts" / "services.sh"
    code = subprocess.call(["bash", str(script), command, *names])
    if code:
        raise typer.Exit(code)


@services_app.command("up")
def services_up(
    names: Annotated[list[str] | None, typer.Argument(help="redis postgres prefect")] = None,
) -> None:
    """Install if needed and start the local services. Example: sluice services up"""
    _services("up", names or [])


@services_app.command("down")
def services_down(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Stop the local services this checkout started. Example: sluice services down"""
    _services("down", names or [])


@services_app.command("status")
def services_status(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Say which local services run. Example: sluice services status"""
    _services("status", names or [])


@app.command()
def demo(rows: Annotated[int, typer.Option(help="Rows per generated file.")] = 20_000) -> None:
    """Generate sample files in the inbox, ingest them and show what landed. Example: sluice demo"""
    from sluice import demo as sample

    settings = get_settings()
    api = _use_local_prefect(settings)
    files = sample.write_inbox(settings.inbox, rows=rows)
    out.print(f"wrote {len(files)} sample files under {settings.inbox}")
    run_files(files, None)
    _show_landed(settings)
    if api:
        out.print(
            f"Prefect UI: {api.removesuffix('/api')}/runs "
            "(flow runs are named ingest-file/<dataset>/<file>)",
            soft_wrap=True,
        )


def _show_landed(settings: Settings) -> None:
    from sluice import demo as sample

    table = Table("dataset", "hypertable", "files", "rows", "chunks", title="What landed")
    for row in sample.landed(settings):
        table.add_row(*(str(v) for v in row))
    out.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
