"""ingest_file: one file through fingerprint -> read -> infer_schema -> profile -> validate ->
enrich -> transform -> load, each a retrying task whose result persists in Redis. A file below
`SLUICE_FUSE_BELOW_BYTES` runs as one task run, `file` (tasks/file_run.py), whose stages persist
their results under the same keys: a task run costs the Prefect server as much as a small
file's stages.

One run works on a file at a time: the run holds the file's Redis lock (with a lease) from
the ledger check to the cleanup; a second run waits, then ends `duplicate`. Only the ledger of
the target database says a file is loaded: a `loaded` status in Redis that the ledger does not
confirm (another database on the same Redis, a restored database, a ledger row an operator
deleted) is stale, logged once, and the file is loaded. A new run of a file that failed resumes
after its last good stage (the stages' cache keys are the content hash, not the run id). A
terminal error quarantines the file and fails the run with the error's message; a transient
error that outlasts its retries fails the run and leaves the file where it is, for the next
run. Cached results whose staged data is gone (StagingLost) are forgotten and the file is
staged again, once.

The load commits a `sluice.file.loaded` outbox row with the rows; quarantine records
`sluice.file.quarantined`. The run's cleanup (or quarantine) then relays pending outbox
events to the sink's Redis stream and Prefect events; a relay that fails leaves them for the
next one (the relay-outbox flow runs every minute).

Observed (tasks/observe.py): the run is tagged with its dataset (`dataset:<name>`), the Prometheus
metrics of this process move, and one markdown artifact `summary-<dataset>` sums the run up
(rows, schema changes, chunks, seconds per stage, the profile and validation tables).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, tags
from prefect.runtime import flow_run

from blocks.results import ensure_result_storage
from sluice.contracts import FileOutcome
from sluice.datasets import dataset_for
from sluice.settings import get_settings
from tasks.file_run import run_file, small, whole
from tasks.fingerprint import fingerprint
from tasks.observe import RunWatch, stage_seconds, tag_run
from tasks.policy import use_result_storage


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
    settings = get_settings()
    use_result_storage(ensure_result_storage(settings))
    name = dataset_for(Path(path), settings.inbox, dataset)
    tag_run(name)
    with (
        RunWatch(path) as watch,
        stage_seconds() as seconds,
        tags("sluice", f"dataset:{name}"),
    ):
        watch.seconds = seconds
        if small(path):
            outcome = whole(path, dataset)
        else:
            ref, loaded = fingerprint(path, dataset)
            watch.ref = ref
            outcome = run_file(ref, loaded, started, fused=False)
        watch.outcome = outcome
    return outcome


_serialize = ingest_file.serialize_parameters


def _plain_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters for the API: a path and a dataset name are JSON as they are.
    Prefect's own serializer imports FastAPI for its encoder (0.45 s in a new process)."""
    if all(value is None or isinstance(value, str) for value in parameters.values()):
        return dict(parameters)
    return _serialize(parameters)


ingest_file.serialize_parameters = _plain_parameters  # type: ignore[method-assign]
