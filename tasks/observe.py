"""Watching the stages run: one structured log line per stage per file (through Prefect's run
logger, so it is in the UI), the Prometheus metrics of sluice.metrics, the seconds per stage a
run's summary artifact shows, and progress for a watcher in this process (the CLI's bars).

`stage_task` wraps every stage with `observed`; a cached stage does not run, so it has no line.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext

from sluice import metrics
from sluice.contracts import FileOutcome, FileRef, LoadReport
from sluice.errors import TerminalError
from sluice.settings import get_settings
from sluice.summary import summary, tables_markdown

P = ParamSpec("P")
R = TypeVar("R")
Listener = Callable[[str, str, int], None]  # (path, "bytes" | "rows", amount so far)

_SECONDS: ContextVar[dict[str, float] | None] = ContextVar("sluice_stage_seconds", default=None)
_WATCH: ContextVar[RunWatch | None] = ContextVar("sluice_run_watch", default=None)
_LISTENERS: list[Listener] = []
_LOCAL = logging.getLogger("sluice.stages")


@contextmanager
def stage_seconds() -> Iterator[dict[str, float]]:
    """Collect the seconds of each stage run in this context (a flow run's stages)."""
    seconds: dict[str, float] = {}
    token = _SECONDS.set(seconds)
    try:
        yield seconds
    finally:
        _SECONDS.reset(token)


def record_seconds(seconds: dict[str, float]) -> None:
    """Seconds of stages that ran inside one task (sluice.onepass): the stage metrics, and the
    run's summary."""
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context else 1
    collected = _SECONDS.get()
    for stage, spent in seconds.items():
        metrics.stage_done(stage, spent, attempt)
        if collected is not None:
            collected[stage] = collected.get(stage, 0.0) + spent


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener(path, kind, amount)` on progress of any file in this process."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def notify(path: str, kind: str, amount: int) -> None:
    for listener in tuple(_LISTENERS):  # a listener may leave meanwhile
        listener(path, kind, amount)


def observed(stage: str, fn: Callable[P, R], composite: bool = False) -> Callable[P, R]:
    """`fn` timed, logged (`stage=... file_id=... seconds=...`) and counted; the seconds of a
    `composite` stage are left out of the run's per-stage seconds (its stages are in them)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        result: Any = None
        outcome = "failed"
        try:
            result = fn(*args, **kwargs)
            outcome = "ok"
            return result  # type: ignore[no-any-return]
        finally:
            ref = _ref(result, args, kwargs)
            _record(stage, time.perf_counter() - started, outcome, ref, args, kwargs, composite)

    return run


def _ref(result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> FileRef | None:
    results = result if isinstance(result, tuple) else (result,)
    for value in (kwargs.get("ref"), *args, *results):
        if isinstance(value, FileRef):
            return value
    return None


def _record(
    stage: str,
    seconds: float,
    outcome: str,
    ref: FileRef | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    composite: bool = False,
) -> None:
    context = TaskRunContext.get()
    attempt = context.task_run.run_count if context else 1
    metrics.stage_done(stage, seconds, attempt)
    if (collected := _SECONDS.get()) is not None and outcome == "ok" and not composite:
        collected[stage] = collected.get(stage, 0.0) + seconds
    path = ref.path if ref else str(kwargs.get("path") or (args[0] if args else "-"))
    # a composite task's line (a small file's `file`) says what the run's own end line says
    logger = _LOCAL if composite else stage_logger(stage)
    logger.info(
        "stage=%s file_id=%s seconds=%.3f outcome=%s attempt=%d file=%s",
        stage,
        ref.file_id if ref else "-",
        seconds,
        outcome,
        attempt,
        path,
    )
    if ref is not None and stage == "read" and outcome == "ok":
        notify(ref.path, "bytes", ref.size)


def stage_logger(stage: str) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger (shipped to the API, in the UI) for a stage running as its own task run
    or outside any; `sluice.stages` (this process's log, not shipped) for a stage run inside
    another's task (a small file's `file` task): the run's summary artifact has its seconds,
    and each line shipped costs the Prefect server."""
    context = TaskRunContext.get()
    if context is None or context.task.name == stage:
        return get_run_logger()
    return _LOCAL


def artifact_key(kind: str, dataset: str) -> str:
    """`summary-<dataset>` (`profile-`, `validation-` for a stage task run alone): one stable
    key per dataset (the UI keeps every version under it, newest first)."""
    return f"{kind}-{dataset.replace('_', '-').lower()}"


def current_watch() -> RunWatch | None:
    """The RunWatch of the ingest-file run this code runs in (its tasks see it too), if any."""
    return _WATCH.get()


def attach(kind: str, title: str, rows: list[dict[str, Any]], dataset: str) -> None:
    """A stage's table (profile, validation) for the run's one summary artifact; outside an
    ingest-file run (a stage task called alone) it becomes a table artifact of its own."""
    watch = current_watch()
    if watch is not None:
        watch.tables[kind] = (title, rows)
        return
    create_table_artifact(key=artifact_key(kind, dataset), table=rows, description=title)


def tag_run(dataset: str) -> None:
    """Add `sluice` and `dataset:<name>` to the flow run's tags (the UI filters runs by tag)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    wanted = {"sluice", f"dataset:{dataset}"}
    if wanted <= set(context.flow_run.tags):
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(
                context.flow_run.id, tags=sorted({*context.flow_run.tags, *wanted})
            )
    except Exception as exc:  # noqa: BLE001 - a tag is not worth a failed run
        get_run_logger().warning("could not tag the run with %s: %s", dataset, exc)


class RunWatch:
    """One ingest-file run, watched: in-flight gauge while it runs; at its end the file's
    metrics, one log line and the summary artifact. Never fails the run it watches."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ref: FileRef | None = None
        self.outcome: FileOutcome | None = None
        self.load: LoadReport | None = None
        self.seconds: dict[str, float] = {}
        self.tables: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # kind: (title, rows)
        self.started = time.perf_counter()
        self._token: Any = None
        try:
            self.arrived: float | None = os.stat(path).st_mtime
        except OSError:
            self.arrived = None

    def __enter__(self) -> RunWatch:
        metrics.IN_FLIGHT.inc()
        self._token = _WATCH.set(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        metrics.IN_FLIGHT.dec()
        _WATCH.reset(self._token)
        if self.ref is None:
            return
        try:
            self._ended(exc)
        except Exception as problem:  # noqa: BLE001 - observing must not fail the run
            get_run_logger().warning("could not record the run's metrics or summary: %s", problem)

    def _ended(self, exc: BaseException | None) -> None:
        assert self.ref is not None
        ref = self.ref
        if exc is not None:
            outcome = "quarantined" if isinstance(exc, TerminalError) else "failed"
            rows, message = 0, str(exc)
        else:
            assert self.outcome is not None
            outcome, rows, message = self.outcome.outcome, self.outcome.rows, self.outcome.message
        metrics.file_ended(ref.dataset, outcome, rows=rows, size=ref.size)
        if outcome == "loaded" and self.arrived is not None:
            metrics.END_TO_END.labels(ref.dataset).observe(max(0.0, time.time() - self.arrived))
        seconds = time.perf_counter() - self.started
        get_run_logger().info(
            "file_id=%s outcome=%s rows=%d seconds=%.3f file=%s",
            ref.file_id, outcome, rows, seconds, ref.path,
        )  # fmt: skip
        create_markdown_artifact(
            key=artifact_key("summary", ref.dataset),
            markdown=summary(ref, outcome, rows, seconds, self.load, self.seconds, message)
            + tables_markdown(self.tables),
            description=f"{ref.path}: {outcome}, {rows:,} rows",
        )
        refresh_backlog()


def refresh_backlog() -> None:
    """Dead-letter depth and outbox pending, read from Redis and PostgreSQL now."""
    from sluice import catalog, ledger
    from sluice.load import outbox
    from sluice.state import checkpoints

    settings = get_settings()
    with catalog.connect(settings.dsn()) as conn:
        metrics.OUTBOX_PENDING.set(outbox.pending(conn))
        keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    with checkpoints.client(settings.redis_url.get_secret_value()) as r:
        metrics.DEAD_LETTERS.set(r.xlen(keys.dead))
