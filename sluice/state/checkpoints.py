"""Redis: per-file status, the dead-letter stream, seen-marks, and the key scheme of one sink.

Redis is a cache and a coordination point, never the answer to "is this file loaded": that is
the ledger row in `sluice.files` of the target database (sluice/ledger.py). So every key Sluice
writes is scoped to the sink it speaks for: `Keys(sink)`, where `sink` is a hash of the
PostgreSQL cluster's `system_identifier`, the database and `SLUICE_SCHEMA` (ledger.sink_id).
Two sinks that share one Redis (staging and production, database A and a fresh database B)
never see each other's statuses, locks, stage results, dead letters or seen-marks. The sink id
sits in braces, a Redis Cluster hash tag: a sink's keys share a slot, so the Lua scripts that
touch two of them (the outbox's XADD-once) work on a cluster too.

Keys of a sink `s` (`P` = `sluice:{s}:`)
    P file:<file_id>        hash  dataset, path, stage, status, runs, updated     TTL: result_ttl
    P lock:file:<file_id>   the file lock (sluice/state/locks.py)               TTL: its lease
    P events                stream the outbox relay feeds (load/outbox.py)      capped length
    P outbox:sent:<event>   an event's stream entry id: never published twice   TTL: 7 days
    P dead                  stream of dead letters (terminal failures)          capped length
    P writers               sorted set: the loads holding a writer slot, scored by their
                            lease's end (state/locks.py WriterSlot)             TTL: 2 leases
    P writers:limit         how many loads may write at once (serve, worker)  TTL: 1 hour,
                                                                               renewed
    P seen:<version>        file id of a handled inbox file version (path, size, mtime): the
                            sensor and the sweep skip it without hashing it once
                            the ledger confirms that file id                    TTL: result_ttl
    P result:<stage>:v<n>:<file_id>:<rules hash>
                            a stage's persisted Prefect result (tasks/policy.py) TTL: result_ttl
    lock:P result:...       prefect-redis's lock on that cache key (blocks/results.py)
                                                                                hold timeout
`forget_results` deletes a file's stage results once it is loaded, `forget_file` every key of a
file (`sluice forget`), so every key Sluice writes has a TTL or an owner that deletes it.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from sluice.errors import SluiceError

DEAD_LETTERS_MAXLEN = 100_000


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one sink (see the module's docstring)."""

    sink: str

    def __post_init__(self) -> None:
        if not self.sink or not self.sink.isalnum():
            raise ValueError(f"a sink id is a non-empty alphanumeric string, got {self.sink!r}")

    @property
    def prefix(self) -> str:
        return f"sluice:{{{self.sink}}}:"

    def file(self, file_id: str) -> str:
        return f"{self.prefix}file:{file_id}"

    def lock(self, file_id: str) -> str:
        return f"{self.prefix}lock:file:{file_id}"

    def seen(self, path: str, size: int, mtime_ns: int) -> str:
        digest = hashlib.sha256(f"{path}\0{size}\0{mtime_ns}".encode()).hexdigest()[:24]
        return f"{self.prefix}seen:{digest}"

    def result(self, stage: str, version: int, file_id: str, rules_hash: str) -> str:
        return f"{self.prefix}result:{stage}:v{version}:{file_id}:{rules_hash}"

    def results_of(self, file_id: str) -> str:
        """A SCAN pattern: every stage result of one file (any stage, version, rules)."""
        return f"{self.prefix}result:*:*:{file_id}:*"

    @property
    def stage_locks(self) -> str:
        """A SCAN pattern: prefect-redis's locks on this sink's stage results."""
        return f"lock:{self.prefix}result:*"

    @property
    def seen_marks(self) -> str:
        """A SCAN pattern: every seen-mark of this sink."""
        return f"{self.prefix}seen:*"

    def sent(self, event_id: object) -> str:
        return f"{self.prefix}outbox:sent:{event_id}"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def writers(self) -> str:
        return f"{self.prefix}writers"

    @property
    def writers_limit(self) -> str:
        return f"{self.prefix}writers:limit"


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
    """A client on the process's connection pool for `url`: closing it (`with client(url) as
    r:`) keeps the pool's connections for the next caller (a new TCP connection per call cost
    8 % of serve's CPU)."""
    return redis.Redis(connection_pool=_pool(url))


@functools.cache
def _pool(url: str) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(url, socket_timeout=10, socket_connect_timeout=5)


def set_status(
    r: redis.Redis, keys: Keys, file_id: str, *, ttl_s: int, **fields: str | int | float
) -> None:
    key = keys.file(file_id)
    with r.pipeline() as pipe:
        mapping: dict[Any, Any] = {**fields, "updated": time.time()}
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl_s)
        pipe.execute()


def begin_run(
    r: redis.Redis, keys: Keys, file_id: str, *, ttl_s: int, dataset: str, path: str
) -> tuple[int, dict[str, str]]:
    """Mark the file `running` and count this run; returns how many runs the file has had and
    its status before (e.g. `loaded` by the run this one waited for: a hint the ledger checks)."""
    key = keys.file(file_id)
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


def status_of(r: redis.Redis, keys: Keys, file_id: str) -> dict[str, str]:
    """The file's status hash (empty when Redis has none, e.g. after its TTL)."""
    raw: dict[Any, Any] = r.hgetall(keys.file(file_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def remember_handled(r: redis.Redis, keys: Keys, path: str, file_id: str, *, ttl_s: int) -> bool:
    """Note that the file now at `path` (this size and mtime) is loaded; False if it is gone."""
    try:
        st = Path(path).stat()
    except OSError:
        return False
    r.set(keys.seen(path, st.st_size, st.st_mtime_ns), file_id, ex=ttl_s)
    return True


def seen_ids(r: redis.Redis, keys: Keys, versions: list[tuple[str, int, int]]) -> list[str | None]:
    """For each (path, size, mtime_ns): the file id a run marked it with, else None. Only a
    hint: `ledger.handled` asks the ledger whether those files are loaded."""
    if not versions:
        return []
    return [
        v.decode() if isinstance(v, bytes) else None
        for v in r.mget([keys.seen(*v) for v in versions])
    ]


def dead_letter(
    r: redis.Redis,
    keys: Keys,
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
    entry = r.xadd(keys.dead, fields, maxlen=DEAD_LETTERS_MAXLEN, approximate=True)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def forget_results(r: redis.Redis, names: Iterable[str]) -> int:
    """Delete stage results that pointed at staging removed after a committed load."""
    found = list(names)
    return int(r.delete(*found)) if found else 0


def forget_file(r: redis.Redis, keys: Keys, file_id: str) -> int:
    """Delete every key of one file in this sink: its status, lock, stage results and their
    locks, and the seen-marks that name it (a scan of this sink's marks). Returns how many."""
    names: list[Any] = [keys.file(file_id), keys.lock(file_id)]
    names += r.scan_iter(match=keys.results_of(file_id))
    names += r.scan_iter(match="lock:" + keys.results_of(file_id))
    marks = list(r.scan_iter(match=keys.seen_marks, count=1000))
    if marks:
        names += [m for m, v in zip(marks, r.mget(marks), strict=True) if v == file_id.encode()]
    return int(r.delete(*names))
