"""fingerprint: content hash, size and dataset of a file, the dataset rules in force (read here,
once per run), the sink it loads into, and whether that sink's ledger already has it (one task:
each task run costs the Prefect server as much as a small file's stages)."""

from __future__ import annotations

from pathlib import Path

from sluice import catalog, ledger
from sluice.contracts import FileRef
from sluice.read import identify
from sluice.settings import get_settings
from sluice.translate import translating
from tasks.policy import stage_task


@stage_task("fingerprint")
def fingerprint(path: str, dataset: str | None = None) -> tuple[FileRef, bool]:
    """The file's FileRef, and True when the ledger holds its content (a duplicate)."""
    settings = get_settings()
    with translating(file=path, stage="fingerprint"):
        found = identify(Path(path), dataset, inbox=settings.inbox, rules_file=settings.datasets)
    with translating(file=path, stage="fingerprint"), catalog.connect(settings.dsn()) as conn:
        ref = FileRef(
            path=str(Path(path)),
            file_id=found.file_id,
            dataset=found.dataset,
            size=found.size,
            rules_hash=found.rules.digest(),
            sink=ledger.sink_id(conn, settings.schema_name),
            rules=found.rules,
        )
        return ref, catalog.is_loaded(conn, found.file_id)
