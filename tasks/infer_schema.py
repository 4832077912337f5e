"""infer_schema: column types over the whole file and the time column; how the file was read
(every guess, with the rule that overrides it, and the file's metadata) goes to the run's
summary as its `reading` table."""

from __future__ import annotations

import logging

from prefect import get_run_logger

from sluice import schema as stage
from sluice.contracts import FileRef, InferredSchema, Staged
from sluice.enrich import INGESTED_AT
from sluice.schema import guesses
from sluice.settings import get_settings
from sluice.translate import translating
from tasks.observe import attach
from tasks.policy import stage_task


@stage_task("infer_schema")
def infer_schema(ref: FileRef, raw: Staged) -> InferredSchema:
    settings = get_settings()
    with translating(file=ref.path, stage="infer_schema"):
        inferred = stage.run(raw, ref.in_force, settings.batch_rows)
    if inferred.note:
        level = logging.WARNING if inferred.time_column == INGESTED_AT else logging.INFO
        get_run_logger().log(level, "%s: %s", ref.path, inferred.note)
    if inferred.guesses or inferred.meta:
        attach("reading", guesses.title(inferred), guesses.rows(inferred), ref.dataset)
    return inferred
