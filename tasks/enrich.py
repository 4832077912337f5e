"""enrich: add the lineage columns (the file, `_row`, `_ingested_at`); drop the rows row-level
validation set aside."""

from __future__ import annotations

from sluice import enrich as stage
from sluice.contracts import FileRef, Staged, ValidationReport
from sluice.translate import translating
from tasks.policy import stage_task


@stage_task("enrich")
def enrich(ref: FileRef, staged: Staged, report: ValidationReport | None = None) -> Staged:
    rejected = report.rejected if report is not None else None
    with translating(file=ref.path, stage="enrich"):
        return stage.run(ref, staged, rejected)
