"""validate: the Great Expectations gate; a failed `error` expectation fails the file."""

from __future__ import annotations

from prefect.artifacts import create_table_artifact

from sluice import validate as stage
from sluice.contracts import FileRef, InferredSchema, Staged, ValidationReport
from sluice.datasets import load_rules
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.policy import stage_task


@stage_task("validate")
def validate(ref: FileRef, raw: Staged, schema: InferredSchema) -> ValidationReport:
    settings = get_settings()
    rules = load_rules(settings.datasets, ref.dataset)
    report: ValidationReport | None = None
    try:
        with translating(file=ref.path, stage="validate"):
            report = stage.run(raw, schema, rules, settings.batch_rows)
            stage.check(report)
    finally:
        if report is not None:
            create_table_artifact(
                key=f"validation-{ref.dataset.replace('_', '-')}",
                table=stage.report_rows(report),
                description=f"Validation of {ref.path}: "
                + ("passed" if report.success else "FAILED"),
            )
    return report
