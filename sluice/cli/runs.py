"""Where a command's flow runs go and how they run in this process: the Prefect API (the
project's local server, started when it is down, or Prefect's own configuration), Prefect's
console and heartbeats, and `run_files`, the ingest-file runs of `sluice ingest` and `demo`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sluice.cli.base import PROCESS
from sluice.cli.render import Bars, err, print_outcome
from sluice.contracts import FileOutcome, Outcome
from sluice.errors import TerminalError
from sluice.settings import Settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from sluice.services.local import Starting


@dataclass
class Runs:
    """Where a command's flow runs go (None: Prefect's ephemeral API, in this process), and the
    local services being started for them."""

    api: str | None
    starting: Starting | None = None

    def ready(self) -> None:
        """Wait until the services being started answer (before the first run)."""
        if self.starting is not None:
            self.starting.wait()
            self.starting = None


def runs_api(settings: Settings) -> Runs:
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
    return Runs(api, starting)


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


def real_server(settings: Settings, command: str) -> str:
    """The Prefect API of a long-lived command (started if it is the local one and down): it
    needs a real server, where triggers, schedules, work pools and the UI live."""
    runs = runs_api(settings)
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


def quiet_prefect_console(verbose: bool) -> None:
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


def console_logging(verbose: bool) -> None:
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
    quiet_prefect_console(verbose)
    from flows.ingest_file import ingest_file
    from tasks.observe import listening
    from tasks.policy import one_client

    imported()
    if ready is not None:
        ready()
    outcomes = []
    with Bars(paths) as bars, listening(bars.advance), one_client(), no_heartbeats():
        for path in paths:
            started = time.perf_counter()
            bars.start(path)
            state = ingest_file(path=str(path), dataset=dataset, return_state=True)
            outcomes.append(_outcome(path, state, time.perf_counter() - started))
            bars.finish(path, outcomes[-1])
            if not quiet:
                print_outcome(outcomes[-1])
    return outcomes


def imported() -> None:
    """In the `sluice` command, what is imported now lives as long as the process: the garbage
    collector stops looking at it (measured: a full collection over Prefect's and Great
    Expectations' objects cost 1.3 s in a run, and 1.4 s more at exit). Not in a process that
    only calls the CLI's functions (tests, benchmarks): their objects stay collectable."""
    if PROCESS.command:
        import gc

        gc.freeze()


@contextmanager
def no_heartbeats() -> Iterator[None]:
    """This command's runs send no heartbeats: the sync engine waits up to 1 s for its
    heartbeat thread at each run's end, and nothing watches a run of a terminal (the zombie
    automation is `sluice worker`'s, for its own runs)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def _outcome(path: Path, state: State[FileOutcome], seconds: float) -> FileOutcome:
    result = state.result(raise_on_failure=False)
    if isinstance(result, FileOutcome):
        return result
    text = str(result) if isinstance(result, BaseException) else (state.message or state.name)
    kind: Outcome = "quarantined" if isinstance(result, TerminalError) else "failed"
    return FileOutcome(
        path=str(path), outcome=kind, rows=0, file_id="", seconds=seconds, message=text
    )
