"""prepare: read -> infer_schema -> profile -> validate -> enrich -> transform as one task.

For files below `SLUICE_FUSE_BELOW_BYTES`: each Prefect task run costs the server about as much
CPU as a small file's stages together (measured: ~0.05 s of server CPU per task run, ~0.15 s
per flow run), so a small file pays one task run for its six stages. Every stage still logs
its line, counts its metrics, and writes its artifacts (the stage tasks' bodies run inside this
task); the result persists like a stage's, so a run that failed at load resumes after prepare.
Big files keep one task per stage, where resuming after the last good stage saves seconds.
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
