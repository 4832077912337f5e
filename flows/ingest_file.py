"""ingest_file: one file through fingerprint -> read -> infer_schema -> profile -> validate ->
enrich -> transform -> load, each a retrying task whose result persists in Redis (a file below
`SLUICE_FUSE_BELOW_BYTES` runs read..transform as one such task, `prepare`).

One run works on a file at a time: the run holds the file's Redis lock (with a lease) from
the ledger check to the cleanup; a second run waits, then ends `duplicate`. Only the ledger of
the target database says a file is loaded: a `loaded` status in Redis that the ledger does not
confirm (another database on the same Redis, a restored database, a ledger row an operator
deleted) is stale, logged once, and the file is loaded. A new run of a
file that failed resumes after its last good stage (the stages' cache keys are
the content hash, not the run id). A terminal error quarantines the file and fails the run with
the error's message; a transient error that outlasts its retries fails the run and leaves the
file where it is, for the next run. Cached results whose staged data is gone (StagingLost) are
forgotten and the file is staged again, once.

The load commits a `sluice.file.loaded` outbox row with the rows; quarantine records
`sluice.file.quarantined`. The run's cleanup (or quarantine) task then relays pending outbox
events to the Redis stream `sluice:events` and Prefect events; a relay that fails leaves them
for the next one (the relay-outbox flow runs every minute).

Observed (tasks/observe.py): the run is tagged with its dataset (`dataset:<name>`), each stage
logs one line with the file id and its seconds, the Prometheus metrics of this process move,
and a markdown artifact `summary-<dataset>` sums the run up (rows, schema changes, chunks,
seconds per stage).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.runtime import flow_run

from blocks.results import ensure_result_storage
from sluice import ledger
from sluice import load as sink
from sluice.contracts import FileOutcome, FileRef, InferredSchema, LoadReport, Outcome
from sluice.datasets import dataset_for
from sluice.errors import StagingLost, TerminalError, UnreadableFile
from sluice.settings import get_settings
from tasks.claim import claimed
from tasks.fingerprint import fingerprint
from tasks.finish import cleanup, quarantine_file, restage
from tasks.load import load
from tasks.observe import RunWatch, stage_seconds, tag_run
from tasks.policy import use_result_storage
from tasks.prepare import prepare, run_stages


def _stages(ref: FileRef) -> tuple[LoadReport, InferredSchema]:
    """The stages; the schema comes back with a note on rows row-level validation set aside.

    A file below `SLUICE_FUSE_BELOW_BYTES` runs read..transform as one task (tasks/prepare.py).
    """
    from dataclasses import replace

    if ref.size < get_settings().fuse_below_bytes:
        ready, schema, report = prepare(ref)
    else:
        ready, schema, report = run_stages(ref, fused=False)
    loaded = load(ref, ready, schema)
    if report.rejected is not None:
        aside = f"{report.rejected.rows} rows failed expectations: {report.rejected.path}"
        schema = replace(schema, note="; ".join(filter(None, (schema.note, aside))))
    return loaded, schema


def run_name() -> str:
    """`ingest-file/<dataset>/<file name>`: the file is visible in the run list of the UI."""
    params = flow_run.parameters
    path = Path(str(params.get("path", "?")))
    dataset = dataset_for(path, get_settings().inbox, params.get("dataset"))
    return f"ingest-file/{dataset}/{path.name}"


@flow(name="ingest-file", flow_run_name=run_name, persist_result=False)
def ingest_file(path: str, dataset: str | None = None) -> FileOutcome:
    """Ingest one file into its dataset's hypertable, exactly once."""
    started = time.perf_counter()
    use_result_storage(ensure_result_storage(get_settings()))
    with RunWatch(path) as watch, stage_seconds() as seconds:
        watch.seconds = seconds
        ref, loaded = fingerprint(path, dataset)
        watch.ref = ref
        tag_run(ref.dataset)
        with tags("sluice", f"dataset:{ref.dataset}"):
            outcome = watch.outcome = _ingest(ref, loaded, started, watch)
    return outcome


def _ingest(ref: FileRef, loaded: bool, started: float, watch: RunWatch) -> FileOutcome:
    """`loaded`: the ledger had the file at fingerprint. A run of it that ended while this one
    waited for the lock says so in the file's status, which the ledger must confirm (and if
    Redis lost that status, load finds the ledger row and ends `duplicate` writing no row)."""
    path = ref.path
    with claimed(ref) as claim:
        if loaded or (claim.before.get("status") == "loaded" and _ledger_has(ref)):
            get_run_logger().info("%s is a duplicate of a loaded file (%s)", path, ref.file_id)
            cleanup(ref)  # a run that died after its commit left staging and events behind
            return _outcome(ref, "duplicate", started)
        if not Path(ref.path).exists():
            return _gone(ref, claim.before, started)
        try:
            try:
                report, schema = _stages(ref)
            except StagingLost:
                restage(ref)
                report, schema = _stages(ref)
            watch.load = report
        except TerminalError as exc:
            quarantine_file(ref, exc, attempts=claim.runs)
            raise
        cleanup(ref)
    return _outcome(
        ref, report.outcome, started, rows=report.rows, table=report.table, message=schema.note
    )


def _ledger_has(ref: FileRef) -> bool:
    """Redis says `loaded`: true only if the ledger agrees (it may have since the fingerprint)."""
    with sink.connect(get_settings().dsn()) as conn:
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
