"""prepare: read -> infer_schema -> profile -> validate -> enrich -> transform, written once.

`run_stages` is the chain: one task run per stage for a big file, or the stages' bodies in the
calling task. A small file's `file` task (tasks/file_run.py) runs `prepare`'s body under
prepare's cache key (tasks/policy.py `cached`), so a run that failed at load resumes after it;
every stage still logs its line, counts its metrics and adds its table to the run's summary.
"""

from __future__ import annotations

from typing import Any

from sluice.contracts import FileRef, InferredSchema, Staged, ValidationReport
from tasks.enrich import enrich
from tasks.infer_schema import infer_schema
from tasks.policy import stage_task
from tasks.profile import profile
from tasks.read import read
from tasks.transform import transform
from tasks.validate import validate


def run_stages(ref: FileRef, fused: bool) -> tuple[Staged, InferredSchema, ValidationReport]:
    """The chain read..transform, the one place its order is written: with `fused`, the stage
    tasks' bodies run inside the calling task (prepare); without, each is a task run of its own
    (the big-file path of flows/ingest_file.py)."""

    def call(stage: Any) -> Any:
        return stage.fn if fused else stage

    raw = call(read)(ref)
    schema = call(infer_schema)(ref, raw)
    profiled = call(profile)(ref, raw, schema)
    report = call(validate)(ref, raw, schema, profiled)
    ready = call(transform)(ref, call(enrich)(ref, profiled.typed or raw, report), schema)
    return ready, schema, report


@stage_task("prepare", composite=True)
def prepare(ref: FileRef) -> tuple[Staged, InferredSchema, ValidationReport]:
    """The load-ready staged rows, their schema and the validation report."""
    return run_stages(ref, fused=True)
