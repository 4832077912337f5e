"""fingerprint: what a file is for Sluice before it is read: its content id (sha256, streamed),
its size, its dataset and the dataset's rules in force, read once here for the whole run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from sluice.datasets import DatasetRules, dataset_for, load_rules
from sluice.errors import ConfigError, TransientError, UnreadableFile

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Identified:
    file_id: str
    size: int
    dataset: str
    rules: DatasetRules


def fingerprint(path: Path) -> tuple[str, int]:
    """sha256 hex digest of the content, streamed, and the size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def identify(path: Path, dataset: str | None, *, inbox: Path, rules_file: Path) -> Identified:
    """The file's id and size, its dataset (`dataset`, else its inbox folder, else its stem) and
    that dataset's rules. A missing file is unreadable; one that cannot be read now may be
    later (transient); rules that do not parse are the configuration's fault, not the file's."""
    if not path.is_file():
        raise UnreadableFile("no such file", hint="check the path; nothing was changed")
    try:
        file_id, size = fingerprint(path)
    except OSError as exc:
        raise TransientError(f"cannot read the file ({exc})", hint="retried") from exc
    name = dataset_for(path, inbox, dataset)
    try:
        rules = load_rules(rules_file, name)
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"the dataset rules are wrong: {exc}",
            hint=f"fix {rules_file} (see README, Dataset rules); the file was kept "
            "where it is and nothing was loaded",
        ) from exc
    return Identified(file_id, size, name, rules)
