"""Quarantine: a file that failed terminally is kept, never deleted, under quarantine/<dataset>/,
and what a person needs to act on it is recorded: the outbox's `quarantined` event, a dead letter
(stage, reason, hint, attempts) and the file's status."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sluice import catalog
from sluice.contracts import FileRef
from sluice.errors import SluiceError
from sluice.load import outbox
from sluice.settings import Settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from sluice.translate import translating


def run(ref: FileRef, error: SluiceError, *, attempts: int, settings: Settings) -> Path:
    """Keep the file in quarantine, then record its event, dead letter and status; returns
    where the file went."""
    kept = keep(
        Path(ref.path),
        dataset=ref.dataset,
        file_id=ref.file_id,
        quarantine=settings.quarantine,
        inbox=settings.inbox,
    )
    with translating(file=ref.path, stage="quarantine"), catalog.connect(settings.dsn()) as conn:
        outbox.record(
            conn,
            outbox.QUARANTINED,
            file_id=ref.file_id,
            dataset=ref.dataset,
            payload=event_payload(ref, error, kept, attempts),
        )
    r = checkpoints.client(settings.redis_url.get_secret_value())
    keys = Keys(ref.sink)
    checkpoints.dead_letter(
        r,
        keys,
        error,
        file_id=ref.file_id,
        path=ref.path,
        quarantined=str(kept),
        dataset=ref.dataset,
        attempts=attempts,
    )
    checkpoints.set_status(
        r,
        keys,
        ref.file_id,
        ttl_s=settings.result_ttl_s,
        status="quarantined",
        stage=error.stage,
        dataset=ref.dataset,
        path=str(kept),
    )
    return kept


def event_payload(ref: FileRef, error: SluiceError, kept: Path, attempts: int) -> dict[str, Any]:
    """The outbox's `quarantined` event: where the file was and went, and why."""
    return {
        "path": ref.path,
        "quarantined": str(kept),
        "stage": error.stage,
        "error": type(error).__name__,
        "message": error.message,
        "hint": error.hint,
        "attempts": attempts,
    }


def keep(path: Path, *, dataset: str, file_id: str, quarantine: Path, inbox: Path) -> Path:
    """Move a file out of the inbox into quarantine; a file from elsewhere is copied, not moved.

    The name gets the file id's first 12 hex digits so two bad files with one name both survive.
    """
    folder = quarantine / dataset
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{file_id[:12]}-{path.name}"
    if not path.exists():
        return dest  # already moved by an earlier attempt
    if _inside(path, inbox):
        shutil.move(str(path), dest)
    else:
        shutil.copy2(path, dest)
    return dest


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
