"""Claim a file for one run: its Redis file lock, held for the run, with a lease.

A second run of the same file (another worker, a sensor event and a sweep) waits for the first
and then finds the ledger row (`duplicate`) or the file quarantined. The lock and the status
are the file's keys in its sink (`checkpoints.Keys`), so runs loading into different databases
never wait for each other. The lease ends a killed
run's claim; the run that claims next clears the stage locks the dead run left in Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect import get_run_logger

from blocks.results import stage_lock_name
from sluice.contracts import FileRef
from sluice.errors import FileBusy
from sluice.retry import retrying
from sluice.settings import get_settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from sluice.state.locks import FileLock
from sluice.translate import translating
from tasks.policy import CACHED_STAGES, result_key


@dataclass(frozen=True)
class Claim:
    lock: FileLock
    runs: int  # this file's runs so far, this one included (a dead letter's `attempts`)
    before: dict[str, str]  # the file's status hash when this run claimed it


@contextmanager
def claimed(ref: FileRef) -> Iterator[Claim]:
    """Hold the file's lock for the body; TransientError if another run keeps it too long.

    Redis being unreachable is retried like a stage's transient error (same count, same
    backoff); past that the run fails and the file stays in the inbox.
    """
    settings = get_settings()
    lock, runs, before = retrying(
        lambda: _claim(ref),
        retries=settings.retries,
        backoff_s=settings.retry_backoff_s,
        on_retry=lambda exc: get_run_logger().warning(
            "claim of %s: %s; retrying", ref.path, exc.message
        ),
        never=(FileBusy,),  # another run has the file: waiting longer is the next run's job
    )
    try:
        yield Claim(lock, runs, before)
    finally:
        lock.release()
        if lock.lost:
            get_run_logger().warning("the lock on %s was taken over during the run", ref.path)


def _claim(ref: FileRef) -> tuple[FileLock, int, dict[str, str]]:
    settings = get_settings()
    logger = get_run_logger()
    with translating(file=ref.path, stage="claim"):
        r = checkpoints.client(settings.redis_url.get_secret_value())
        keys = Keys(ref.sink)
        lock = FileLock(r, keys.lock(ref.file_id), lease_s=settings.file_lease_s)
        started = time.monotonic()
        got = lock.acquire(
            wait_s=settings.file_wait_s,
            waiting=lambda holder: logger.info(
                "another run (%s) is working on %s; waiting for it", holder, ref.path
            ),
        )
        if not got:
            raise FileBusy(
                f"another run ({lock.holder()}) has held this file for "
                f"{time.monotonic() - started:.0f} s",
                hint="the file stays in the inbox; a later run or the sweep picks it up",
            )
        try:
            # Whoever held this file's stage locks is dead: we hold the file now.
            stale = [stage_lock_name(result_key(s, v, ref)) for s, v in CACHED_STAGES.items()]
            if removed := r.delete(*stale):
                logger.warning("cleared %d stage lock(s) a dead run left on %s", removed, ref.path)
            runs, before = checkpoints.begin_run(
                r,
                keys,
                ref.file_id,
                ttl_s=settings.result_ttl_s,
                dataset=ref.dataset,
                path=ref.path,
            )
        except BaseException:
            lock.release()
            raise
    return lock, runs, before
