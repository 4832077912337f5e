"""ingest_file's claim on a file: one run at a time, and nothing a dead run left can block it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from blocks.results import stage_lock_name
from sluice.read import fingerprint
from sluice.settings import Settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from sluice.state.locks import FileLock
from tasks.policy import CACHED_STAGES, result_key
from tests.data import weather_csv
from tests.fix_services import count_rows

pytestmark = [pytest.mark.services, pytest.mark.flow]


def test_a_run_waits_for_the_run_holding_its_file_then_ends_duplicate(
    ingest: Any, db: Any, home: Path, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    """A second run of a file finds the lock held, waits, and ends `duplicate` once it is free."""
    path = weather_csv(home / "inbox" / "held" / "a.csv", rows=100)
    assert ingest(path).is_completed()
    file_id, _ = fingerprint(path)
    other = FileLock(redis_client, sink_keys.lock(file_id), lease_s=5)
    assert other.acquire(wait_s=0)  # "another run" is working on the file
    threading.Timer(1.5, other.release).start()

    started = time.monotonic()
    state = ingest(path)

    assert state.is_completed()
    assert state.result().outcome == "duplicate"
    assert time.monotonic() - started >= 1.4  # it waited for the holder
    assert count_rows(db, "held") == 100


def test_a_run_that_cannot_get_its_file_fails_transiently_and_keeps_the_file(
    ingest: Any,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sluice.settings import get_settings

    monkeypatch.setattr(get_settings(), "file_wait_s", 0.5)
    path = weather_csv(home / "inbox" / "busy" / "a.csv", rows=50)
    file_id, _ = fingerprint(path)
    other = FileLock(redis_client, sink_keys.lock(file_id), lease_s=30)
    assert other.acquire(wait_s=0)
    try:
        state = ingest(path)
    finally:
        other.release()

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "another run" in message and other.token in message
    assert path.exists()  # not quarantined
    assert redis_client.xlen(sink_keys.dead) == 0 or all(
        e[1][b"file_id"].decode() != file_id for e in redis_client.xrange(sink_keys.dead)
    )


def test_stage_locks_left_by_a_killed_run_do_not_block_the_next_run(
    ingest: Any,
    db: Any,
    home: Path,
    redis_client: redis.Redis,
    settings: Settings,
    sink_keys: Keys,
) -> None:
    """prefect-redis stage locks with no expiry (a run SIGKILLed mid-stage) are cleared on claim."""
    path = weather_csv(home / "inbox" / "orphan" / "a.csv", rows=80)
    file_id, _ = fingerprint(path)
    from sluice.contracts import FileRef
    from sluice.datasets import load_rules

    ref = FileRef(
        path=str(path),
        file_id=file_id,
        dataset="orphan",
        size=path.stat().st_size,
        rules_hash=load_rules(settings.datasets, "orphan").digest(),
        sink=sink_keys.sink,
    )
    for stage, version in CACHED_STAGES.items():  # a dead holder's locks, never to expire
        redis_client.set(stage_lock_name(result_key(stage, version, ref)), "dead-holder")

    state = ingest(path)

    assert state.is_completed(), state.message
    assert count_rows(db, "orphan") == 80
    assert redis_client.exists(sink_keys.lock(file_id)) == 0  # released at the end of the run
    for stage, version in CACHED_STAGES.items():
        assert redis_client.exists(stage_lock_name(result_key(stage, version, ref))) == 0


def test_each_run_of_a_file_is_counted_in_its_status(
    ingest: Any, home: Path, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    path = weather_csv(home / "inbox" / "counted" / "a.csv", rows=20)
    file_id, _ = fingerprint(path)
    ingest(path)
    ingest(path)
    status = checkpoints.status_of(redis_client, sink_keys, file_id)
    assert status["runs"] == "2"
    assert status["status"] == "loaded"
    assert 0 < redis_client.ttl(sink_keys.file(file_id)) <= settings_ttl()


def settings_ttl() -> int:
    from sluice.settings import get_settings

    return get_settings().result_ttl_s
