"""infer_schema: column types over the whole file and the time column."""

from __future__ import annotations

from prefect import get_run_logger

from sluice import schema as stage
from sluice.contracts import FileRef, InferredSchema, Staged
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.policy import stage_task


@stage_task("infer_schema")
def infer_schema(ref: FileRef, raw: Staged) -> InferredSchema:
    settings = get_settings()
    with translating(file=ref.path, stage="infer_schema"):
        inferred = stage.infer(raw, ref.in_force, settings.batch_rows)
    if inferred.note:
        get_run_logger().warning("%s: %s", ref.path, inferred.note)
    return inferred
