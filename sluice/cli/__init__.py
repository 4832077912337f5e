"""The `sluice` command: the package's face, and the one engine module that reaches flows/.

Flows and Prefect are imported inside the commands that run them, so `sluice --help` stays fast.
An error ends a command with one line on stderr (what, where, what to do) and exit status 1;
`sluice --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sluice.contracts import FileOutcome, Outcome
from sluice.errors import SluiceError, TerminalError
from sluice.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis
    from prefect.client.schemas.objects import State

    from sluice.services.local import Starting
    from sluice.state.checkpoints import Keys
    from sluice.state.dlq import Letter, Replayed

_DEBUG = False
_COMMAND = False  # this process is the `sluice` command (main), not a caller of its functions


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; an unexpected error is one line on stderr and exit 1 (unless --debug)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _DEBUG:
                raise
            from sluice.translate import one_line  # psycopg and redis: not for --help

            err.print(f"error: {one_line(exc)}", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(1) from None

    return run


class _Typer(typer.Typer):
    """typer.Typer whose commands end in one line on error (see `_friendly`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register(_friendly(fn))
            return fn

        return decorator


app = _Typer(
    help="Sluice: files in an inbox become rows in TimescaleDB hypertables.\n\n"
    "Example: sluice ingest data/weather.csv --dataset weather",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
services_app = _Typer(
    help="Start, stop and check the local Redis, PostgreSQL and Prefect. "
    "Example: sluice services up",
    no_args_is_help=True,
)
app.add_typer(services_app, name="services")
dlq_app = _Typer(
    help="Dead letters: list, show and replay files that were quarantined. "
    "Example: sluice dlq list",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")
out = Console()
err = Console(stderr=True)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    global _DEBUG
    _DEBUG = debug


@dataclass
class _Runs:
    """Where a command's flow runs go (None: Prefect's ephemeral API, in this process), and the
    local services being started for them."""

    api: str | None
    starting: Starting | None = None

    def ready(self) -> None:
        """Wait until the services being started answer (before the first run)."""
        if self.starting is not None:
            self.starting.wait()
            self.starting = None


def _runs_api(settings: Settings) -> _Runs:
    """Where this command's runs go, with the local services they need started when they do not
    answer (SLUICE_START_SERVICES), in the background: `.ready()` waits for them.

    Prefect's own PREFECT_API_URL (environment, profile, a test's harness) is used as it is;
    unset, the project's server (SLUICE_PREFECT_API_URL) when it answers, else the local one is
    started. Redis and PostgreSQL are started when the settings name the local ones, never
    others. One line on stderr says what is being started; later commands find it up.
    """
    from sluice.services import local

    start = settings.start_services
    down = local.down_in_sink(settings) if start else []
    starting = local.start(down, settings.home) if down else None
    ours = settings.prefect_api_url
    api = os.environ.get("PREFECT_API_URL") or None
    if api is None and local.prefect_answers(ours):
        api = _point_prefect_at(ours)
    else:
        api = api or _configured_prefect_api()
        if start and api in (None, ours) and local.is_local("prefect", ours):
            if api is None or not local.prefect_answers(ours):
                starting = local.also_start(starting, ["prefect"], settings.home)
                api = _point_prefect_at(ours)
    if starting is not None:
        err.print(_starting_line(starting.names, settings), highlight=False, soft_wrap=True)
    return _Runs(api, starting)


def _starting_line(names: list[str], settings: Settings) -> str:
    """`starting the local Prefect server (...); later commands reuse it; UI http://...`"""
    from sluice.services import local

    it = "it" if len(names) == 1 else "them"
    ui = f"; UI {settings.prefect_api_url.removesuffix('/api')}" if "prefect" in names else ""
    return (
        f"starting the local {local.describe(names)} (`sluice services up`, in "
        f"{settings.home / 'services'}); later commands reuse {it}{ui}"
    )


def _point_prefect_at(url: str) -> str:
    """PREFECT_API_URL for this process (Prefect re-reads it if it is imported already)."""
    os.environ["PREFECT_API_URL"] = url
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    return url


def _configured_prefect_api() -> str | None:
    """The API Prefect's own configuration names (a profile, a test's harness), if any."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def _quiet_prefect_console(verbose: bool) -> None:
    """Runs log to the Prefect API (the UI) in full; the terminal gets one line per file.

    A failed run's traceback goes to the terminal only with --verbose: the line for the file
    already says what failed, where, and what to do.
    """
    level = "INFO" if verbose else "CRITICAL"
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", level)


# Loggers whose INFO lines a long-running command's terminal shows only with --verbose: each
# stage's line, the readers' and validation's details, the task runs' states. The Prefect API
# (the UI) gets the runs' logs either way; the terminal keeps each run's own lines.
_DETAIL = ("sluice.stages", "sluice.read.readers", "sluice.validate", "prefect.task_runs")


def _console_logging(verbose: bool) -> None:
    """The terminal of `serve` and `worker`: a few lines per run (began, its outcome line,
    finished) and every warning; with --verbose each stage's line too (16 lines per file)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_not_detail)


def _not_detail(record: Any) -> bool:
    return bool(record.levelno >= 30 or not record.name.startswith(_DETAIL))


def run_files(
    paths: list[Path],
    dataset: str | None,
    verbose: bool = False,
    *,
    quiet: bool = False,
    ready: Callable[[], None] | None = None,
) -> list[FileOutcome]:
    """Run `ingest_file` for each path in this process, printing each file's line as it ends
    (unless quiet), with a progress bar per file on a terminal's stderr. `ready` is called
    once the flows are imported, before the first run (it waits for services being started)."""
    _quiet_prefect_console(verbose)
    from flows.ingest_file import ingest_file
    from tasks.observe import listening
    from tasks.policy import one_client

    _imported()
    if ready is not None:
        ready()
    outcomes = []
    with _Bars(paths) as bars, listening(bars.advance), one_client(), _no_heartbeats():
        for path in paths:
            started = time.perf_counter()
            bars.start(path)
            state = ingest_file(path=str(path), dataset=dataset, return_state=True)
            outcomes.append(_outcome(path, state, time.perf_counter() - started))
            bars.finish(path, outcomes[-1])
            if not quiet:
                _print(outcomes[-1])
    return outcomes


def _imported() -> None:
    """In the `sluice` command, what is imported now lives as long as the process: the garbage
    collector stops looking at it (measured: a full collection over Prefect's and Great
    Expectations' objects cost 1.3 s in a run, and 1.4 s more at exit). Not in a process that
    only calls the CLI's functions (tests, benchmarks): their objects stay collectable."""
    if _COMMAND:
        import gc

        gc.freeze()


@contextmanager
def _no_heartbeats() -> Iterator[None]:
    """This command's runs send no heartbeats: the sync engine waits up to 1 s for its
    heartbeat thread at each run's end, and nothing watches a run of a terminal (the zombie
    automation is `sluice worker`'s, for its own runs)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


class _Bars:
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

    def __enter__(self) -> _Bars:
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


def _outcome(path: Path, state: State[FileOutcome], seconds: float) -> FileOutcome:
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
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of the files' outcomes, nothing else.")
    ] = False,
) -> None:
    """Ingest files now, in this process. Example: sluice ingest weather.csv --dataset weather

    One line per file: outcome, rows, file id, seconds, path -> table. Exit status 0 when
    every file is loaded or a duplicate, else 1.
    """
    runs = _runs_api(get_settings())
    outcomes = run_files(paths, dataset, verbose, quiet=as_json, ready=runs.ready)
    if as_json:
        _json([_outcome_dict(o) for o in outcomes])
    elif len(outcomes) > 1:
        _summary(outcomes)
    if any(o.outcome not in ("loaded", "duplicate") for o in outcomes):
        raise typer.Exit(1)


def _outcome_dict(outcome: FileOutcome) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(outcome), "seconds": round(outcome.seconds, 3)}


def _summary(outcomes: list[FileOutcome]) -> None:
    """Per outcome: files, rows, seconds (stderr: stdout stays one line per file)."""
    table = Table("outcome", "files", "rows", "seconds", title="Summary")
    for kind in ("loaded", "duplicate", "quarantined", "failed"):
        chosen = [o for o in outcomes if o.outcome == kind]
        if chosen:
            rows = sum(o.rows for o in chosen)
            spent = sum(o.seconds for o in chosen)
            table.add_row(kind, str(len(chosen)), f"{rows:,}", f"{spent:.2f}")
    err.print(table)


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array, one object per dataset.")
    ] = False,
) -> None:
    """Per dataset: files loaded and quarantined today, rows, last load, inbox lag, runs in
    flight, dead letters. Example: sluice status --json
    """
    from sluice import catalog, ledger
    from sluice.state import checkpoints
    from sluice.status import gather

    settings = get_settings()
    with (
        catalog.connect(settings.dsn()) as conn,
        checkpoints.client(settings.redis_url.get_secret_value()) as r,
    ):
        found = gather(conn, r, ledger.keys(conn, settings.schema_name), settings.inbox)
    if as_json:
        _json([s.as_dict() for s in found])
        return
    table = Table(title="Datasets (loaded, quarantined, rows: today)")
    table.add_column("dataset", no_wrap=True)
    for name in ("loaded", "quarantined", "rows"):
        table.add_column(name, justify="right", no_wrap=name == "rows", overflow="fold")
    table.add_column("last load")
    for name in ("waiting", "lag", "running", "dead"):  # inbox lag, runs in flight, letters
        table.add_column(name, justify="right")
    for s in found:
        last = s.last_load.astimezone().strftime("%m-%d %H:%M") if s.last_load else "-"
        lag = _age(s.inbox_lag_s) if s.inbox_lag_s is not None else "-"
        cells = (s.loaded_today, s.quarantined_today, f"{s.rows_today:,}", last, s.waiting)
        table.add_row(s.dataset, *map(str, cells), lag, str(s.in_flight), str(s.dead_letters))
    out.print(table if found else "no datasets yet: `sluice ingest FILE` or `sluice demo`")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command()
def datasets(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the rules.")] = False,
) -> None:
    """The dataset rules and suites in force: each dataset datasets.yaml names or that has a
    suite by name (expectations/<dataset>.json beside it); other datasets get the defaults.
    Example: sluice datasets
    """
    from sluice.status import describe_rules, rules_in_force

    settings = get_settings()
    base = settings.datasets.parent
    found = [describe_rules(r, base) for r in rules_in_force(settings.datasets)]
    if as_json:
        _json(found)
        return
    table = Table(title=f"Dataset rules ({settings.datasets})")
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
        else f"no rules in {settings.datasets} and no suites in {base / 'expectations'}: "
        "every dataset has defaults",
        soft_wrap=True,
    )
    err.print("A dataset not listed: time column and types detected, chunks of 7 days, UTC.")


@app.command()
def serve(
    concurrency: Annotated[
        int, typer.Option(help="Flow runs at once in this process (ingest-file's limit too).")
    ] = 4,
    writers: Annotated[
        int, typer.Option(help="Global limit on concurrent TimescaleDB loads, all workers.")
    ] = 4,
    sensor: Annotated[bool, typer.Option(help="Watch the inbox and announce arrivals.")] = True,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Serve the deployments and watch the inbox until Ctrl-C. Example: sluice serve"""

    settings = get_settings()
    api = _real_server(settings, "serve")
    _quiet_prefect_console(verbose)
    _console_logging(verbose)
    from deployments.serve import serve as run_serve

    def ready(names: dict[str, Any]) -> None:
        ui = (api or "").removesuffix("/api")
        out.print(f"serving {', '.join(names)} on {api}", highlight=False)
        out.print(f"watching {settings.inbox}; runs: {ui}/runs  (Ctrl-C stops)", highlight=False)

    run_serve(concurrency=concurrency, writers=writers, with_sensor=sensor, on_ready=ready)


@app.command()
def worker(
    pool: Annotated[str, typer.Option(help="The work pool whose runs to execute.")] = "sluice",
    concurrency: Annotated[int, typer.Option(help="Flow runs at once in this process.")] = 4,
    writers: Annotated[
        int, typer.Option(help="Global limit on concurrent TimescaleDB loads, if not set yet.")
    ] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
    crash_after: Annotated[
        float | None,
        typer.Option(help="Seconds without a heartbeat before a run is Crashed (3 heartbeats)."),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Execute the work pool's Sluice runs warm in this process until Ctrl-C; run as many as
    the load needs, on any machine. Example: sluice worker --pool sluice --concurrency 4"""

    # Before Prefect is imported: runs send heartbeats, so a dead worker's runs end Crashed.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    _real_server(get_settings(), "worker")
    _quiet_prefect_console(verbose)
    _console_logging(verbose)
    from deployments.worker import work

    work(pool=pool, concurrency=concurrency, writers=writers, name=name, crash_after_s=crash_after)


def _real_server(settings: Settings, command: str) -> str:
    """The Prefect API of a long-lived command (started if it is the local one and down): it
    needs a real server, where triggers, schedules, work pools and the UI live."""
    runs = _runs_api(settings)
    runs.ready()
    if runs.api is None:
        err.print(
            f"error: `sluice {command}` needs a Prefect server; none answers at "
            f"{settings.prefect_api_url}: start it with `sluice services up prefect`, "
            "or set PREFECT_API_URL",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    return runs.api


def _services(command: str, names: list[str]) -> None:
    """The packaged services script on SLUICE_HOME, with the prefect of this environment."""
    from sluice import services

    code = services.run(command, names, home=get_settings().home)
    if code:
        raise typer.Exit(code)


@services_app.command("install")
def services_install(
    names: Annotated[list[str] | None, typer.Argument(help="redis postgres prefect")] = None,
) -> None:
    """Install (as root; otherwise say what is missing) what the services need.
    Example: sluice services install"""
    _services("install", names or ["redis", "postgres", "prefect"])


@services_app.command("up")
def services_up(
    names: Annotated[list[str] | None, typer.Argument(help="redis postgres prefect")] = None,
) -> None:
    """Install if needed and start the local services. Example: sluice services up"""
    _services("up", names or [])


@services_app.command("down")
def services_down(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Stop the local services started on this SLUICE_HOME. Example: sluice services down"""
    _services("down", names or [])


@services_app.command("status")
def services_status(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Say which local services run, and where the Prefect UI is. Example: sluice services status"""
    _services("status", names or [])


@app.command()
def demo(rows: Annotated[int, typer.Option(help="Rows per generated file.")] = 20_000) -> None:
    """Generate sample files, ingest them and show what landed, in a home (SLUICE_HOME/demo),
    rules and a schema (`demo`) of the demo's own: your datasets never get its rules.
    Example: sluice demo
    """
    from sluice import demo as sample

    runs = _runs_api(get_settings())
    with sample.own_settings(get_settings()) as settings:
        files = sample.write_inbox(settings.inbox, rows=rows)
        out.print(f"wrote {len(files)} sample files under {settings.inbox}", soft_wrap=True)
        out.print(f"rules: {settings.datasets}", soft_wrap=True, highlight=False)
        run_files(files, None, ready=runs.ready)
        _show_landed(settings)
    if api := runs.api:
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


@contextmanager
def _dead_letters(settings: Settings) -> Iterator[tuple[redis.Redis, Keys]]:
    """Redis and the sink's keys for the dlq commands (the letters of the database the settings
    name); an unknown letter or Redis down ends the command with 1."""
    from sluice import ledger, translate
    from sluice.state import checkpoints

    keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    r = checkpoints.client(settings.redis_url.get_secret_value())
    try:
        yield r, keys
    except SluiceError as exc:
        err.print(str(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        if not translate.is_redis_down(exc):
            raise
        err.print(translate.one_line(exc))
        raise typer.Exit(1) from None
    finally:
        r.close()


def _json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2))


@dlq_app.command("list")
def dlq_list(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's letters.")] = None,
    history: Annotated[
        bool, typer.Option(help="Every letter, also older ones of a file quarantined again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, every field.")] = False,
) -> None:
    """The newest dead letter of each quarantined file, oldest first. Example: sluice dlq list"""
    from sluice.state import dlq

    with _dead_letters(get_settings()) as (r, keys):
        found = dlq.letters(r, keys, dataset=dataset, history=history)
    if as_json:
        _json([letter.as_dict() for letter in found])
        return
    table = Table(title="Dead letters")
    for name in ("id", "when", "dataset", "file", "stage", "error"):
        table.add_column(name, no_wrap=name in ("id", "when"))
    table.add_column("message", ratio=1)
    for letter in found:
        cells = (letter.dataset, letter.name, letter.stage, letter.error, letter.message)
        table.add_row(letter.id, letter.when, *cells)
    out.print(table if found else "no dead letters")


@dlq_app.command("show")
def dlq_show(
    key: Annotated[str, typer.Argument(help="Letter id, or a file id (a unique prefix will do).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Everything a dead letter says. Example: sluice dlq show 3f2a9c"""
    from sluice.state import dlq

    with _dead_letters(get_settings()) as (r, keys):
        letter = dlq.find(r, keys, key)
    if as_json:
        _json(letter.as_dict())
        return
    _show(letter)


def _show(letter: Letter) -> None:
    rows = {"when": letter.when, **letter.as_dict()}
    rows.pop("at")
    for name, value in rows.items():
        out.print(f"{name:<12} {value}", highlight=False, soft_wrap=True)


@dlq_app.command("replay")
def dlq_replay(
    keys: Annotated[
        list[str] | None, typer.Argument(help="Letter ids or file ids (unique prefixes).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every file with a dead letter.")] = False,
    dataset: Annotated[str | None, typer.Option(help="With --all: only this dataset.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Move quarantined files back to the inbox and ingest them again, after fixing the cause.

    Example: sluice dlq replay --all --dataset weather
    """
    if bool(keys) == all_:
        raise typer.BadParameter("give letter ids or --all (not both)")
    if dataset and not all_:
        raise typer.BadParameter("--dataset goes with --all")
    runs = _runs_api(get_settings())
    _quiet_prefect_console(verbose)
    from flows.replay import replay

    _imported()
    runs.ready()
    with _no_heartbeats():
        state = replay(ids=keys or None, all=all_, dataset=dataset, return_state=True)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, list):
        err.print(f"replay failed: {summary}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    for item in summary:
        _print_replayed(item)
    if not summary:
        out.print("no dead letters to replay")
    if any(item.outcome not in ("loaded", "duplicate") for item in summary):
        raise typer.Exit(1)


def _print_replayed(item: Replayed) -> None:
    file_id = item.file_id[:12] or "-"
    out.print(
        f"{item.outcome:<11} {item.rows:>10,} rows  {file_id:<12}  {item.letter}  {item.file}",
        highlight=False,
        soft_wrap=True,
    )
    if item.message:
        prefix = "note: " if item.outcome in ("loaded", "duplicate") else ""
        err.print(f"{prefix}{item.message}", highlight=False, soft_wrap=True)


@dlq_app.command("drop")
def dlq_drop(
    key: Annotated[str, typer.Argument(help="Letter id, or a file id (a unique prefix will do).")],
) -> None:
    """Delete one dead letter; the quarantined file stays. Example: sluice dlq drop 3f2a9c"""
    from sluice.state import dlq

    with _dead_letters(get_settings()) as (r, keys):
        letter = dlq.find(r, keys, key)
        dlq.remove(r, keys, letter.id)
    out.print(f"dropped {letter.id} ({letter.name}); the file stays at {letter.quarantined}")


@app.command()
def forget(
    file: Annotated[str, typer.Argument(help="The file's path, or its id (a unique prefix).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do it; without, say what it would do.")
    ] = False,
) -> None:
    """Make a loaded file loadable again: its rows and its ledger row go in one transaction,
    then its Redis state (status, stage results, seen-marks) and staging.

    Example: sluice forget 3f2a9c1b7e04 --yes
    """
    from sluice import catalog, ledger

    settings = get_settings()
    with catalog.connect(settings.dsn()) as conn:
        file_id = ledger.resolve(conn, file)
        found = ledger.find(conn, file_id)
    what = f"the rows in {found[2]} and the ledger row of" if found else "the Redis state of"
    if not yes:
        err.print(f"would delete {what} {file_id[:12]}; run again with --yes", highlight=False)
        raise typer.Exit(1)
    report = ledger.forget_everywhere(settings, file_id)
    done = report.forgotten
    if done is None:
        out.print(f"{file_id[:12]} was not in the ledger; removed {report.redis_keys} Redis keys")
        return
    out.print(
        f"forgot {file_id[:12]}: {done.rows:,} rows deleted from {done.target}, its ledger row "
        f"and {report.redis_keys} Redis keys; ingest it again to load it",
        highlight=False,
    )


suite_app = _Typer(
    help="Great Expectations suites of datasets: write a starting suite from a file. "
    "Example: sluice suite init weather data/2024-03-01.csv",
    no_args_is_help=True,
)
app.add_typer(suite_app, name="suite")


@suite_app.command("init")
def suite_init(
    dataset: Annotated[str, typer.Argument(help="Dataset the suite is for.")],
    path: Annotated[Path, typer.Argument(help="A typical file of the dataset.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write; default: expectations/<dataset>.json beside datasets.yaml, "
            "where it applies to the dataset by its name.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing suite file.")] = False,
) -> None:
    """Write a GX 1.x suite of what FILE holds, for a person to edit, as expectations/<dataset>.json
    beside datasets.yaml: it applies by its name. Reads the file only: no services needed.

    Example: sluice suite init weather data/2024-03-01.csv
    """
    from sluice import read
    from sluice.contracts import FileRef
    from sluice.datasets import load_rules
    from sluice.names import safe_identifier
    from sluice.profile import profile_file
    from sluice.validate import suites

    settings = get_settings()
    name = safe_identifier(dataset, fallback="dataset")
    target = output or settings.datasets.parent / "expectations" / f"{name}.json"
    if target.exists() and not force:
        err.print(f"{target} exists; --force overwrites it", highlight=False)
        raise typer.Exit(1)
    rules = load_rules(settings.datasets, name)
    file_id, size = read.fingerprint(path)
    ref = FileRef(str(path), file_id, name, size, rules.digest())
    inferred, profiled = profile_file(ref, rules, settings.staging, settings.batch_rows)
    suite = suites.suite_from_profile(
        name, profiled, source=path.name, time_column=inferred.time_column
    )
    suites.write_suite(target, suite)
    out.print(f"{target}: {len(suite['expectations'])} expectations from {profiled.rows:,} rows")
    err.print(_suite_applies(target, name, settings.datasets), highlight=False, soft_wrap=True)


def _suite_applies(target: Path, name: str, rules_file: Path) -> str:
    """Whether the suite just written runs: by its name, or once a rule names it."""
    from sluice.datasets import load_rules

    in_force = load_rules(rules_file, name).suite
    where = _relative(target, rules_file.parent)
    if in_force == str(target.resolve()):
        return f"it applies to dataset {name} from its next file (see `sluice datasets`)"
    instead = (
        f"dataset {name} runs {_relative(Path(in_force), rules_file.parent)}"
        if in_force
        else f"dataset {name} runs no suite of its own"
    )
    return f"note: {instead}; set `suite: {where}` under {name} in {rules_file} to run this one"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def main() -> None:
    global _COMMAND
    _COMMAND = True
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        _imported()  # the interpreter's last collection at exit skips what the command built
