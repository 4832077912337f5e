"""enrich: add the lineage columns `_file_id`, `_row`, `_ingested_at`."""

from __future__ import annotations

from sluice import enrich as stage
from sluice.contracts import FileRef, Staged
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.policy import stage_task


@stage_task("enrich")
def enrich(ref: FileRef, raw: Staged) -> Staged:
    settings = get_settings()
    with translating(file=ref.path, stage="enrich"):
        return stage.run(ref, raw, settings.staging, settings.batch_rows)
