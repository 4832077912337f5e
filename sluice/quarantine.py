"""Quarantine: a file that failed terminally is kept, never deleted, under quarantine/<dataset>/."""

from __future__ import annotations

import shutil
from pathlib import Path


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
