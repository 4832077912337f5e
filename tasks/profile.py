"""profile: per-column statistics of the file, stored in `sluice.profiles` and shown as a table
artifact (`profile-<dataset>`) in the Prefect UI; also stages the file cast to its types."""

from __future__ import annotations

from prefect.artifacts import create_table_artifact

from sluice import load as sink
from sluice import profile as stage
from sluice import profiles
from sluice.contracts import FileRef, InferredSchema, Profile, Staged
from sluice.errors import translating
from sluice.settings import get_settings
from sluice.staging import stage_path
from tasks.policy import stage_task


def artifact_key(kind: str, dataset: str) -> str:
    """`profile-<dataset>` / `validation-<dataset>`: one stable key per dataset (the UI keeps
    every version under it, newest first)."""
    return f"{kind}-{dataset.replace('_', '-').lower()}"


@stage_task("profile")
def profile(ref: FileRef, raw: Staged, schema: InferredSchema) -> Profile:
    settings = get_settings()
    with translating(file=ref.path, stage="profile"):
        typed = stage_path(settings.staging, ref.file_id, "typed")
        result = stage.run(raw, schema, ref.in_force, settings.batch_rows, typed)
        with sink.connect(settings.dsn()) as conn:
            profiles.save(conn, ref, result)
    create_table_artifact(
        key=artifact_key("profile", ref.dataset),
        table=profiles.artifact_rows(result),
        description=profiles.describe(ref.path, result),
    )
    return result
