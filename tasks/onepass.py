"""onepass: a large file from its bytes to its committed rows in one task run (sluice.onepass):
read..transform run batch by batch inside the load's transaction while PostgreSQL ingests the
COPY. Not cached: a retry runs the pass again (the ledger makes it idempotent); the run's summary
keeps each stage's seconds, profile and validation tables, as the staged path's tasks do.
"""

from __future__ import annotations

from prefect import get_run_logger

from sluice import onepass as stage
from sluice.catalog import connect
from sluice.contracts import FileRef, InferredSchema, LoadReport, Profile, ValidationReport
from sluice.profile import store as profiles
from sluice.settings import get_settings
from sluice.translate import translating
from sluice.validate import verdict
from tasks.load import progress_of, writer_slot
from tasks.observe import attach, record_seconds
from tasks.policy import stage_task
from tasks.validate import log_findings


@stage_task("onepass", composite=True)
def onepass(ref: FileRef) -> tuple[LoadReport, InferredSchema, ValidationReport | None]:
    """The load, the schema it loaded under and the validation report."""
    settings = get_settings()
    with (
        writer_slot(ref),
        translating(file=ref.path, stage="load"),
        connect(settings.dsn()) as conn,
        progress_of(ref, None) as progress,
    ):
        options = stage.Options(
            schema_name=settings.schema_name,
            lock_timeout_s=settings.lock_timeout_s,
            batch_rows=settings.batch_rows,
            side=lambda: connect(settings.dsn()),
            progress=progress,
            decided=lambda kind, value: _attach(ref, kind, value),
        )
        passed = stage.run(conn, ref, options)
    record_seconds(passed.seconds)
    if passed.passes > 1:
        get_run_logger().warning(
            "%s: the types of its first rows did not hold; loaded again with the whole file's",
            ref.path,
        )
    if passed.schema.note:
        get_run_logger().warning("%s: %s", ref.path, passed.schema.note)
    return passed.load, passed.schema, passed.validation


def _attach(ref: FileRef, kind: str, value: object) -> None:
    """The profile and validation tables in the run's summary, as soon as they are decided
    (a file that fails its verdict shows why)."""
    if kind == "profile" and isinstance(value, Profile):
        rows = profiles.artifact_rows(value)
        attach("profile", profiles.describe(ref.path, value), rows, ref.dataset)
    elif kind == "validation" and isinstance(value, ValidationReport):
        rows = verdict.report_rows(value)
        attach("validation", verdict.summary(value, ref.path), rows, ref.dataset)
        log_findings(ref, value)
