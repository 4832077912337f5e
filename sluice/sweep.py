"""The sweep's selection: which files waiting in the inbox need a run.

For each file that is complete (unchanged for `quiet_s`): one held back by this process's
sensor, or with a run already asked for (scheduled, pending or running ingest-file runs, asked
after the sensor's holds: a file the sensor let go meanwhile has its run by then), is left to
that run; a version already marked loaded in Redis is skipped without reading it; otherwise
its content hash decides: in the ledger, it is marked and skipped; locked by a
live run, skipped; else it is waiting. A seen-mark only spares the hashing: the ledger confirms
the file id it names, and a mark the ledger does not confirm is stale (the file is run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from sluice import catalog, ledger
from sluice.ledger import Conn
from sluice.read import fingerprint
from sluice.sensor import held, waiting_files
from sluice.settings import Settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys

Version = tuple[Path, int, int]  # path, size, mtime_ns


@dataclass
class Found:
    waiting: list[str] = field(default_factory=list)  # to run
    loaded: int = 0
    in_progress: int = 0
    queued: int = 0
    still_written: int = 0


def select(settings: Settings, live_paths: Callable[[], set[str]], quiet_s: float) -> Found:
    """The inbox's files, sorted into what `Found` counts; `waiting` are the ones to run.
    `live_paths()`: the paths of the ingest-file runs asked for (scheduled, pending, running)."""
    found = Found()
    complete = _complete(settings.inbox, quiet_s, found)
    # Asked after the sensor's holds: a file it let go had its run created before, so the run
    # is live here or done (in the ledger or locked below), never a second run's to start.
    queued = live_paths()
    versions = [version for version in complete if str(version[0]) not in queued]
    found.queued += len(complete) - len(versions)
    r = checkpoints.client(settings.redis_url.get_secret_value())
    with catalog.connect(settings.dsn()) as conn:
        keys = ledger.keys(conn, settings.schema_name)
        seen = ledger.handled(conn, r, keys, [(str(p), s, m) for p, s, m in versions])
        for (path, _, _), known in zip(versions, seen, strict=True):
            if known:
                found.loaded += 1
            else:
                _by_content(conn, r, keys, path, found, ttl_s=settings.result_ttl_s)
    return found


def _complete(inbox: Path, quiet_s: float, found: Found) -> list[Version]:
    """The files unchanged for `quiet_s` that no sensor of this process holds."""
    now = time.time()
    versions: list[Version] = []
    for path in waiting_files(inbox):
        try:
            st = path.stat()
        except OSError:
            continue
        if now - st.st_mtime < quiet_s:
            found.still_written += 1
        elif held(str(path)):  # serve's sensor has it: its run is not created yet
            found.queued += 1
        else:
            versions.append((path, st.st_size, st.st_mtime_ns))
    return versions


def _by_content(
    conn: Conn, r: redis.Redis, keys: Keys, path: Path, found: Found, *, ttl_s: int
) -> None:
    """A file Redis has no mark for: loaded (then marked), locked by a live run, or waiting."""
    file_id, _ = fingerprint(path)
    if catalog.is_loaded(conn, file_id):
        checkpoints.remember_handled(r, keys, str(path), file_id, ttl_s=ttl_s)
        found.loaded += 1
    elif r.exists(keys.lock(file_id)):
        found.in_progress += 1
    else:
        found.waiting.append(str(path))
