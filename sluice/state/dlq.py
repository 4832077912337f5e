"""Dead letters: read the sink's stream of them (`Keys.dead`), find a letter, put its file
back, drop the letter.

A terminal error keeps the file under quarantine/<dataset>/ and adds a letter to the stream
(`checkpoints.dead_letter`). Replaying a letter restores the file to inbox/<dataset>/<name> and
runs it again (flows/replay.py); the letter goes once the file is loaded or a duplicate, and a
file that fails again has a new letter from the normal quarantine path, which replaces the old
one (`prune`), so a file has one letter. `letters` shows the newest letter of each file unless
asked for the whole history (a file quarantined twice without a replay has two letters).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from sluice.contracts import Outcome
from sluice.errors import SluiceError
from sluice.state.checkpoints import DeadLetter, Keys

_ENTRY_ID = re.compile(r"^\d+-\d+$")
_CONVERT: dict[str, type[int] | type[float]] = {"int": int, "float": float}


class DeadLetterError(SluiceError):
    """A dead letter cannot be found or replayed as asked; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Letter(DeadLetter):
    """A dead letter as stored: the stream entry id plus the fields `dead_letter` wrote."""

    id: str = field(kw_only=True)

    @property
    def when(self) -> str:
        """Local time of the failure, to the second."""
        return datetime.fromtimestamp(self.at).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def name(self) -> str:
        """The file's original name, which a replay restores it under."""
        return Path(self.path).name

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **{k: v for k, v in asdict(self).items() if k != "id"}}


@dataclass(frozen=True, slots=True)
class Replayed:
    """What replaying one letter did: the summary line of `sluice dlq replay` and the flow."""

    letter: str  # stream entry id of the letter replayed (or the id asked for)
    file: str  # where the file was run from (the inbox), else its original path
    outcome: Outcome
    message: str = ""
    rows: int = 0
    file_id: str = ""


def parse(entry_id: str | bytes, raw: Mapping[Any, Any]) -> Letter:
    """A stream entry as a Letter; fields a writer did not set read as empty or zero."""
    values = {_text(k): _text(v) for k, v in raw.items()}
    kwargs: dict[str, Any] = {}
    for f in fields(DeadLetter):
        convert = _CONVERT.get(str(f.type))
        text = values.get(f.name, "")
        kwargs[f.name] = _number(convert, text) if convert else text
    return Letter(id=_text(entry_id), **kwargs)


def _number(convert: type[int] | type[float], text: str) -> int | float:
    try:
        return convert(text)
    except ValueError:
        return convert(0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_all(r: redis.Redis, keys: Keys, *, first: str = "-", last: str = "+") -> list[Letter]:
    """The letters in the stream (between two entry ids), oldest first."""
    entries: list[tuple[Any, Any]] = r.xrange(keys.dead, min=first, max=last) or []
    return [parse(entry_id, raw) for entry_id, raw in entries if entry_id and raw is not None]


def newest_per_file(letters: Iterable[Letter]) -> list[Letter]:
    """The newest letter of each file id, oldest first (the stream's order)."""
    newest: dict[str, Letter] = {}
    for letter in letters:
        newest.pop(letter.file_id, None)  # re-insert: the dict keeps the newest last
        newest[letter.file_id] = letter
    return list(newest.values())


def letters(
    r: redis.Redis, keys: Keys, *, dataset: str | None = None, history: bool = False
) -> list[Letter]:
    """The letters to show or replay: newest per file (every letter with history), oldest first."""
    found = read_all(r, keys)
    chosen = found if history else newest_per_file(found)
    return [letter for letter in chosen if dataset is None or letter.dataset == dataset]


def match(found: Iterable[Letter], key: str) -> Letter:
    """The letter whose entry id is `key`, else the newest of the file whose id starts with it."""
    candidates = list(found)
    for letter in candidates:
        if letter.id == key:
            return letter
    files = {
        letter.file_id: letter
        for letter in newest_per_file(candidates)
        if key and letter.file_id.startswith(key.lower())
    }
    if len(files) == 1:
        return next(iter(files.values()))
    if files:
        raise DeadLetterError(
            f"{key!r} matches {len(files)} files' letters",
            hint="give more digits of the file id, or the letter's entry id",
        )
    raise DeadLetterError(
        f"no dead letter {key!r}", hint="`sluice dlq list` shows letter ids and file ids"
    )


def find(r: redis.Redis, keys: Keys, key: str) -> Letter:
    """One letter by stream entry id, or by a file id or a prefix of it unique among files."""
    key = key.strip()
    if _ENTRY_ID.match(key):
        found = read_all(r, keys, first=key, last=key)
        if found:
            return found[0]
    return match(read_all(r, keys), key)


def restore(letter: Letter, inbox: Path) -> Path:
    """Move the quarantined file back to inbox/<dataset>/<original name>; returns that path.

    Idempotent: when the inbox already holds the same bytes there (an earlier replay restored
    it), the quarantined copy, if still there, is the redundant one and goes. A different file
    at that path is never overwritten.
    """
    kept = Path(letter.quarantined)
    target = inbox / letter.dataset / letter.name
    if target.exists():
        if not _holds(target, letter.file_id):
            raise DeadLetterError(
                f"{target} already holds a different file",
                file=letter.quarantined,
                stage="replay",
                hint="move that file away (or ingest it first), then replay again",
            )
        kept.unlink(missing_ok=True)
        return target
    if not kept.is_file():
        raise DeadLetterError(
            f"the quarantined file {kept} is gone",
            file=letter.path,
            stage="replay",
            hint=f"put the file back at {kept} and replay again, "
            f"or drop the letter with `sluice dlq drop {letter.id}`",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(kept), target)
    return target


def _holds(path: Path, file_id: str) -> bool:
    from sluice.read import fingerprint  # pyarrow comes with sluice.read: only when needed

    return fingerprint(path)[0] == file_id


def remove(r: redis.Redis, keys: Keys, entry_id: str) -> bool:
    """Delete one letter; False when it was not there."""
    return bool(r.xdel(keys.dead, entry_id))


def last_id(r: redis.Redis, keys: Keys) -> str:
    """The newest entry id of the stream ("0-0" when empty): a mark to `prune` through."""
    newest: list[tuple[Any, Any]] = r.xrevrange(keys.dead, count=1) or []
    return _text(newest[0][0]) if newest else "0-0"


def prune(r: redis.Redis, keys: Keys, file_id: str, *, through: str = "+") -> int:
    """Delete the letters of one file, all or those up to entry id `through`; returns how many.

    After a replay that quarantined the file again, `through` is `last_id` from before the run:
    the new letter the quarantine wrote is newer and stays, even when the bytes were edited.
    """
    ids = [letter.id for letter in read_all(r, keys, last=through) if letter.file_id == file_id]
    return int(r.xdel(keys.dead, *ids)) if ids else 0
