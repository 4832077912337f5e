"""profile: per-column statistics of the file, stored in `sluice.profiles` and shown in the
run's summary artifact in the Prefect UI; also stages the file cast to its types."""

from __future__ import annotations

from sluice import catalog
from sluice import profile as stage
from sluice.contracts import FileRef, InferredSchema, Profile, Staged
from sluice.profile import store as profiles
from sluice.settings import get_settings
from sluice.staging import stage_path
from sluice.translate import translating
from tasks.observe import attach
from tasks.policy import stage_task


@stage_task("profile")
def profile(ref: FileRef, raw: Staged, schema: InferredSchema) -> Profile:
    settings = get_settings()
    with translating(file=ref.path, stage="profile"):
        typed = stage_path(settings.staging, ref.file_id, "typed")
        result = stage.run(raw, schema, ref.in_force, settings.batch_rows, typed)
        with catalog.connect(settings.dsn()) as conn:
            profiles.save(conn, ref, result)
    attach(
        "profile", profiles.describe(ref.path, result), profiles.artifact_rows(result), ref.dataset
    )
    return result
