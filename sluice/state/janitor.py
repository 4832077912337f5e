"""Clean up what crashed runs left behind: staged data and stage locks nobody owns any more.

A run that dies (SIGKILL, a lost machine) cannot remove its staging folder or release the
stage locks Prefect took for it. The janitor removes, for files no live run holds:

- `staging/<file_id>/` of a file the ledger has (its load committed), and of any file whose
  staging is older than `max_age_s` (its cached results have expired by then, so a new run
  stages it again either way);
- prefect-redis stage locks (`lock:sluice:{<sink>}:result:<stage>:v<n>:<file_id>:...`) of
  this sink.

Everything else Sluice keeps in Redis expires by itself (status hashes, file locks, results,
sent marks) or is a capped stream (dead letters, events): see sluice/state/checkpoints.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
import redis

from sluice import staging as area
from sluice.ledger import loaded_among
from sluice.state.checkpoints import Keys


@dataclass(frozen=True)
class Swept:
    staging_removed: tuple[str, ...]  # file ids
    staging_kept: int  # folders of files a run holds, or young and not loaded
    locks_removed: int
    bytes_freed: int


def sweep(
    staging: area.Location,
    conn: psycopg.Connection[tuple[object, ...]],
    r: redis.Redis,
    keys: Keys,
    *,
    max_age_s: float,
    now: float | None = None,
) -> Swept:
    now = time.time() if now is None else now
    folders = area.folders(staging)
    ids = [f.file_id for f in folders]
    loaded = loaded_among(conn, ids)
    held = _held(r, keys, ids)
    removed: list[str] = []
    freed = 0
    for folder in folders:
        file_id = folder.file_id
        if file_id in held:
            continue
        if file_id in loaded or now - folder.modified > max_age_s:
            freed += folder.size
            area.remove(staging, file_id)
            removed.append(file_id)
    return Swept(
        staging_removed=tuple(removed),
        staging_kept=len(folders) - len(removed),
        locks_removed=_orphan_stage_locks(r, keys),
        bytes_freed=freed,
    )


def _held(r: redis.Redis, keys: Keys, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    values = r.mget([keys.lock(i) for i in ids])
    return {i for i, v in zip(ids, values, strict=True) if v is not None}


def _orphan_stage_locks(r: redis.Redis, keys: Keys) -> int:
    """Stage locks whose file no run holds: their holder is dead."""
    removed = 0
    for name in r.scan_iter(match=keys.stage_locks, count=500):
        key = name.decode() if isinstance(name, bytes) else str(name)
        parts = key.split(":")  # lock, sluice, {sink}, result, stage, v<n>, file_id, rules_hash
        if len(parts) < 8 or r.exists(keys.lock(parts[6])):
            continue
        removed += int(r.delete(key))
    return removed
