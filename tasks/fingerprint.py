"""fingerprint: content hash, size and dataset of a file, the dataset rules in force (read here,
once per run), the sink it loads into, and whether that sink's ledger already has it (one task:
each task run costs the Prefect server as much as a small file's stages)."""

from __future__ import annotations

from pathlib import Path

import yaml

from sluice import catalog, ledger
from sluice.contracts import FileRef
from sluice.datasets import dataset_for, load_rules
from sluice.errors import ConfigError, TransientError, UnreadableFile
from sluice.read.raw import fingerprint as content_hash
from sluice.settings import get_settings
from sluice.translate import translating
from tasks.policy import stage_task


@stage_task("fingerprint")
def fingerprint(path: str, dataset: str | None = None) -> tuple[FileRef, bool]:
    """The file's FileRef, and True when the ledger holds its content (a duplicate)."""
    settings = get_settings()
    file = Path(path)
    with translating(file=path, stage="fingerprint"):
        if not file.is_file():
            raise UnreadableFile("no such file", hint="check the path; nothing was changed")
        try:
            file_id, size = content_hash(file)
        except OSError as exc:
            raise TransientError(f"cannot read the file ({exc})", hint="retried") from exc
        name = dataset_for(file, settings.inbox, dataset)
        try:
            rules = load_rules(settings.datasets, name)
        except (ValueError, TypeError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"the dataset rules are wrong: {exc}",
                hint=f"fix {settings.datasets} (see README, Dataset rules); the file was kept "
                "where it is and nothing was loaded",
            ) from exc
    with translating(file=path, stage="fingerprint"), catalog.connect(settings.dsn()) as conn:
        ref = FileRef(
            path=str(file),
            file_id=file_id,
            dataset=name,
            size=size,
            rules_hash=rules.digest(),
            sink=ledger.sink_id(conn, settings.schema_name),
            rules=rules,
        )
        return ref, catalog.is_loaded(conn, file_id)
