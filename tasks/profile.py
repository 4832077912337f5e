"""profile: per-column statistics of the file, shown as a table artifact in the Prefect UI."""

from __future__ import annotations

from dataclasses import asdict

from prefect.artifacts import create_table_artifact

from sluice import profile as stage
from sluice.contracts import FileRef, InferredSchema, Profile, Staged
from sluice.datasets import load_rules
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.policy import stage_task


@stage_task("profile")
def profile(ref: FileRef, raw: Staged, schema: InferredSchema) -> Profile:
    settings = get_settings()
    with translating(file=ref.path, stage="profile"):
        result = stage.run(
            raw, schema, load_rules(settings.datasets, ref.dataset), settings.batch_rows
        )
    create_table_artifact(
        key=f"profile-{ref.dataset.replace('_', '-')}",
        table=[asdict(c) for c in result.columns],
        description=f"Profile of {ref.path} ({result.rows} rows)",
    )
    return result
