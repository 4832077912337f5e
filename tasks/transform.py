"""transform: apply the inferred types and target names; stage the exact rows load will COPY."""

from __future__ import annotations

from sluice import transform as stage
from sluice.contracts import FileRef, InferredSchema, Staged
from sluice.settings import get_settings
from sluice.translate import translating
from tasks.policy import stage_task


@stage_task("transform")
def transform(ref: FileRef, enriched: Staged, schema: InferredSchema) -> Staged:
    settings = get_settings()
    with translating(file=ref.path, stage="transform"):
        return stage.run(ref, enriched, schema, ref.in_force, settings.staging, settings.batch_rows)
