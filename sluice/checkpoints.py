"""Redis: per-file status, the dead-letter stream, and removal of a file's stage results.

Keys Sluice writes (all but the stage locks under `sluice:`)
    sluice:file:<file_id>   hash  dataset, path, stage, status, runs, updated     TTL: result_ttl
    sluice:lock:file:<id>   the file lock (sluice/locks.py)                      TTL: its lease
    sluice:events           stream the outbox relay feeds (sluice/outbox.py)    capped length
    sluice:outbox:sent:<e>  an event's stream entry id: never published twice   TTL: 7 days
    lock:sluice:result:...  prefect-redis stage locks (blocks/results.py)       hold timeout
    sluice:dead             stream of dead letters (terminal failures)          capped length
    sluice:seen:<version>   file id of a handled inbox file version (path, size, mtime): the
                            sensor and the sweep skip it without hashing it   TTL: result_ttl
Prefect's task results live under the cache keys `tasks/` computes; `forget_results` deletes
them once the file is loaded, so every key Sluice writes has a TTL or an owner that deletes it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from sluice.errors import SluiceError

DEAD_LETTERS = "sluice:dead"
DEAD_LETTERS_MAXLEN = 100_000


def file_key(file_id: str) -> str:
    return f"sluice:file:{file_id}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    file_id: str
    path: str  # where the file was when it failed
    quarantined: str  # where it is now
    dataset: str
    stage: str
    error: str  # error class name
    message: str
    hint: str
    attempts: int
    at: float


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def set_status(r: redis.Redis, file_id: str, *, ttl_s: int, **fields: str | int | float) -> None:
    key = file_key(file_id)
    with r.pipeline() as pipe:
        mapping: dict[Any, Any] = {**fields, "updated": time.time()}
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl_s)
        pipe.execute()


def begin_run(
    r: redis.Redis, file_id: str, *, ttl_s: int, dataset: str, path: str
) -> tuple[int, dict[str, str]]:
    """Mark the file `running` and count this run; returns how many runs the file has had and
    its status before (e.g. `loaded` by the run this one waited for)."""
    key = file_key(file_id)
    with r.pipeline() as pipe:  # MULTI/EXEC: nothing changes the hash between read and write
        mapping: dict[Any, Any] = {
            "status": "running",
            "stage": "claim",
            "dataset": dataset,
            "path": path,
            "updated": time.time(),
        }
        pipe.hgetall(key)
        pipe.hset(key, mapping=mapping)
        pipe.hincrby(key, "runs", 1)
        pipe.expire(key, ttl_s)
        before, _, runs, _ = pipe.execute()
    return int(runs), {k.decode(): v.decode() for k, v in before.items()}


def status_of(r: redis.Redis, file_id: str) -> dict[str, str]:
    """The file's status hash (empty when Redis has none, e.g. after its TTL)."""
    raw: dict[Any, Any] = r.hgetall(file_key(file_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def version_key(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256(f"{path}\0{size}\0{mtime_ns}".encode()).hexdigest()[:24]
    return f"sluice:seen:{digest}"


def remember_handled(r: redis.Redis, path: str, file_id: str, *, ttl_s: int) -> bool:
    """Note that the file now at `path` (this size and mtime) is loaded; False if it is gone."""
    try:
        st = Path(path).stat()
    except OSError:
        return False
    r.set(version_key(path, st.st_size, st.st_mtime_ns), file_id, ex=ttl_s)
    return True


def handled(r: redis.Redis, versions: list[tuple[str, int, int]]) -> list[bool]:
    """For each (path, size, mtime_ns): was this version loaded already?"""
    if not versions:
        return []
    return [v is not None for v in r.mget([version_key(*v) for v in versions])]


def dead_letter(
    r: redis.Redis,
    error: SluiceError,
    *,
    file_id: str,
    path: str,
    quarantined: str,
    dataset: str,
    attempts: int,
) -> str:
    """Record a terminal failure; returns the stream entry id."""
    letter = DeadLetter(
        file_id=file_id,
        path=path,
        quarantined=quarantined,
        dataset=dataset,
        stage=error.stage,
        error=type(error).__name__,
        message=error.message,
        hint=error.hint,
        attempts=attempts,
        at=time.time(),
    )
    fields: dict[Any, Any] = {k: str(v) for k, v in asdict(letter).items()}
    entry = r.xadd(DEAD_LETTERS, fields, maxlen=DEAD_LETTERS_MAXLEN, approximate=True)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def forget_results(r: redis.Redis, keys: Iterable[str]) -> int:
    """Delete stage results that pointed at staging removed after a committed load."""
    names = list(keys)
    return int(r.delete(*names)) if names else 0
