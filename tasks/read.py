"""read: stream the file into staged Parquet (text columns, safe names)."""

from __future__ import annotations

from sluice import read as stage
from sluice.contracts import FileRef, Staged
from sluice.datasets import load_rules
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.policy import stage_task


@stage_task("read")
def read(ref: FileRef) -> Staged:
    settings = get_settings()
    with translating(file=ref.path, stage="read"):
        rules = load_rules(settings.datasets, ref.dataset)
        return stage.run(ref, rules, settings.staging, settings.batch_rows)
