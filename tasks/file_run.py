"""One file's way after fingerprint, written once: claim, stages, load, then cleanup or
quarantine. The flow runs it with one task run per step for a big file; a small file runs it
inside one task run, `file` (fingerprint included), whose stages still persist their results
under the stage cache keys (tasks/policy.py `cached`), so a retry or a new run resumes after
the last good stage.

Why one task run for a small file: each task run costs the Prefect server about as much CPU as
a whole flow run (docs/decisions.md), and a small file's stages take less than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from sluice import catalog, ledger
from sluice.contracts import FileOutcome, FileRef, InferredSchema, LoadReport, Outcome
from sluice.errors import StagingLost, TerminalError, UnreadableFile
from sluice.onepass import applies as one_pass_applies
from sluice.settings import get_settings
from tasks.claim import claimed
from tasks.fingerprint import fingerprint
from tasks.finish import cleanup, quarantine_file, restage
from tasks.load import load
from tasks.observe import current_watch
from tasks.onepass import onepass
from tasks.policy import cached, stage_task
from tasks.prepare import prepare, run_stages


def small(path: str) -> bool:
    """Below `SLUICE_FUSE_BELOW_BYTES`: the file runs as one task run (False if it is gone:
    fingerprint, a task of its own, then says so)."""
    try:
        return Path(path).stat().st_size < get_settings().fuse_below_bytes
    except OSError:
        return False


@stage_task("file", composite=True)
def whole(path: str, dataset: str | None = None) -> FileOutcome:
    """A small file from fingerprint to cleanup in one task run."""
    started = time.perf_counter()
    ref, loaded = fingerprint.fn(path, dataset)
    if (watch := current_watch()) is not None:
        watch.ref = ref
    return run_file(ref, loaded, started, fused=True)


def run_file(ref: FileRef, loaded: bool, started: float, *, fused: bool) -> FileOutcome:
    """`loaded`: the ledger had the file at fingerprint. A run of it that ended while this one
    waited for the lock says so in the file's status, which the ledger must confirm (and if
    Redis lost that status, load finds the ledger row and ends `duplicate` writing no row)."""
    step = _steps(fused)
    path = ref.path
    with claimed(ref) as claim:
        if loaded or (claim.before.get("status") == "loaded" and _ledger_has(ref)):
            get_run_logger().info("%s is a duplicate of a loaded file (%s)", path, ref.file_id)
            step(cleanup)(ref)  # a run that died after its commit left staging and events
            return _outcome(ref, "duplicate", started)
        if not Path(ref.path).exists():
            return _gone(ref, claim.before, started)
        try:
            try:
                report, schema = _stages(ref, fused)
            except StagingLost:
                step(restage)(ref)
                report, schema = _stages(ref, fused)
            if (watch := current_watch()) is not None:
                watch.load = report
        except TerminalError as exc:
            step(quarantine_file)(ref, exc, attempts=claim.runs)
            raise
        step(cleanup)(ref)
    return _outcome(
        ref, report.outcome, started, rows=report.rows, table=report.table, message=schema.note
    )


def _steps(fused: bool) -> Callable[[Any], Callable[..., Any]]:
    """A step as its own task run, or its body run inside the calling task (fused)."""
    return (lambda task: task.fn) if fused else (lambda task: task)


def _stages(ref: FileRef, fused: bool) -> tuple[LoadReport, InferredSchema]:
    """read..transform, then load; the schema comes back with a note on rows row-level
    validation set aside. Fused: read..transform is prepare's body under prepare's cache key.
    A large file loads in one pass (`onepass`) where the setting and its rules allow."""
    if not fused and get_settings().one_pass and one_pass_applies(ref.in_force):
        loaded, schema, _report = onepass(ref)
        return loaded, schema
    if fused:
        ready, schema, report = cached(prepare, ref)
    else:
        ready, schema, report = run_stages(ref, fused=False)
    loaded = _steps(fused)(load)(ref, ready, schema)
    if report.rejected is not None:
        aside = f"{report.rejected.rows} rows failed expectations: {report.rejected.path}"
        schema = replace(schema, note="; ".join(filter(None, (schema.note, aside))))
    return loaded, schema


def _ledger_has(ref: FileRef) -> bool:
    """Redis says `loaded`: true only if the ledger agrees (it may have since the fingerprint)."""
    with catalog.connect(get_settings().dsn()) as conn:
        if ledger.loaded_among(conn, [ref.file_id]):
            return True
    get_run_logger().warning(
        "Redis says %s (%s) is loaded, but the ledger of %s does not have it: the status is "
        "stale (another database on this Redis, a restore, a deleted ledger row); loading it",
        ref.path,
        ref.file_id[:12],
        get_settings().schema_name,
    )
    return False


def _outcome(ref: FileRef, outcome: Outcome, started: float, **fields: Any) -> FileOutcome:
    return FileOutcome(
        path=ref.path,
        outcome=outcome,
        file_id=ref.file_id,
        seconds=time.perf_counter() - started,
        **{"rows": 0, **fields},
    )


def _gone(ref: FileRef, status: dict[str, str], started: float) -> FileOutcome:
    """The file left its path while this run waited for another run of it (`status`: the
    file's status when this run claimed it)."""
    if status.get("status") == "quarantined":
        get_run_logger().warning("another run quarantined %s as %s", ref.path, status["path"])
        return _outcome(
            ref, "quarantined", started, message=f"another run quarantined it as {status['path']}"
        )
    raise UnreadableFile(
        "the file disappeared while another run of it held the lock",
        file=ref.path,
        stage="claim",
        hint="nothing was loaded from it; put the file back in the inbox to ingest it",
    )
