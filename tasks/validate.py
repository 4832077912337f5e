"""validate: the quality gate (native checks and Great Expectations) and the drift checks; a
failed `error` expectation (or drift error) fails the file, or in row-level mode sends its rows
to quarantine. The result is a table in the run's summary artifact and is recorded with the
profile in `sluice.profiles`."""

from __future__ import annotations

from prefect import get_run_logger

from sluice import catalog
from sluice import validate as stage
from sluice.contracts import FileRef, InferredSchema, Profile, Staged, ValidationReport
from sluice.profile import store as profiles
from sluice.settings import get_settings
from sluice.translate import translating
from sluice.validate import reject, verdict
from tasks.observe import attach
from tasks.policy import stage_task


@stage_task("validate")
def validate(
    ref: FileRef, raw: Staged, schema: InferredSchema, profile: Profile | None = None
) -> ValidationReport:
    settings = get_settings()
    rules = ref.in_force
    report: ValidationReport | None = None
    try:
        with translating(file=ref.path, stage="validate"), catalog.connect(settings.dsn()) as conn:
            history = profiles.history(
                conn, ref.dataset, rules.drift.history if profile else 0, exclude=ref.file_id
            )
            report = stage.run(
                profile.typed if profile and profile.typed else raw,
                schema,
                rules,
                settings.batch_rows,
                profile=profile,
                history=history,
                rows_path=reject.rows_path(settings.quarantine, ref.dataset, ref.file_id),
            )
            profiles.save_validation(conn, ref, report)
            verdict.check(report, schema.time_column)
    finally:
        if report is not None:
            rows = verdict.report_rows(report)
            attach("validation", verdict.summary(report, ref.path), rows, ref.dataset)
    log_findings(ref, report)
    return report


def log_findings(ref: FileRef, report: ValidationReport) -> None:
    """Warnings, drift findings and rows set aside, in the run's log (the UI)."""
    logger = get_run_logger()
    for result in report.results:
        if not result.success and result.expectation.severity == "warn":
            logger.warning("%s: warning %s", ref.path, verdict.describe(result, report.rows))
    for finding in report.drift:
        logger.warning(
            "%s: drift %s(%s): %s", ref.path, finding.check, finding.column, finding.message
        )
    if report.rejected is not None:
        logger.warning(
            "%s: %d rows failed error expectations and went to %s; %d rows load",
            ref.path,
            report.rejected.rows,
            report.rejected.path,
            report.rows_kept,
        )
