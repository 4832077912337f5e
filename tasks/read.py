"""read: stream the file into staged Parquet (text columns, safe names)."""

from __future__ import annotations

from sluice import read as stage
from sluice.contracts import FileRef, Staged
from sluice.settings import get_settings
from sluice.translate import translating
from tasks.policy import stage_task


@stage_task("read")
def read(ref: FileRef) -> Staged:
    settings = get_settings()
    with translating(file=ref.path, stage="read"):
        return stage.run(ref, ref.in_force, settings.staging, settings.batch_rows)
