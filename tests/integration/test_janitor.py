"""The janitor on real Redis and PostgreSQL: what crashed runs left is removed, live work is not."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from sluice.catalog import ensure_catalog
from sluice.settings import Settings
from sluice.state import janitor
from sluice.state.checkpoints import Keys
from sluice.state.locks import FileLock

pytestmark = pytest.mark.services
DAY = 86_400.0


def _staged(staging: Path, file_id: str, *, age_s: float = 0) -> Path:
    folder = staging / file_id
    folder.mkdir(parents=True)
    (folder / "raw.parquet").write_bytes(b"x" * 1000)
    then = time.time() - age_s
    for p in (folder / "raw.parquet", folder):
        os.utime(p, (then, then))
    return folder


def _ledger(conn: psycopg.Connection[tuple[object, ...]], file_id: str) -> None:
    ensure_catalog(conn)
    conn.execute(
        "INSERT INTO sluice.files (file_id, dataset, target, path, size, rows, rules_hash) "
        "VALUES (%s, 'janitor', 'public.janitor', '/x.csv', 1, 1, 'r')",
        (file_id,),
    )


def test_sweep_removes_leftovers_of_dead_runs_and_keeps_live_work(
    db: psycopg.Connection[tuple[object, ...]],
    redis_client: redis.Redis,
    settings: Settings,
    home: Path,
    sink_keys: Keys,
) -> None:
    staging = settings.staging
    ids = {name: uuid.uuid4().hex for name in ("loaded", "held", "old", "young", "held_old")}
    loaded = _staged(staging, ids["loaded"])
    _ledger(db, ids["loaded"])
    held = _staged(staging, ids["held"], age_s=10 * DAY)
    _ledger(db, ids["held"])  # loaded, but a run holds it: not ours to touch
    old = _staged(staging, ids["old"], age_s=10 * DAY)
    young = _staged(staging, ids["young"], age_s=60)
    lock = FileLock(redis_client, sink_keys.lock(ids["held"]), lease_s=30)
    assert lock.acquire(wait_s=0)
    orphan_lock = "lock:" + sink_keys.result("read", 1, ids["old"], "rules")
    live_lock = "lock:" + sink_keys.result("read", 1, ids["held"], "rules")
    other_sink = "lock:" + Keys("othersink").result("read", 1, ids["old"], "rules")
    redis_client.set(other_sink, "another-sink-s-holder")
    redis_client.set(orphan_lock, "dead-holder")
    redis_client.set(live_lock, "live-holder")
    try:
        swept = janitor.sweep(staging, db, redis_client, sink_keys, max_age_s=7 * DAY)
    finally:
        lock.release()

    assert set(swept.staging_removed) == {ids["loaded"], ids["old"]}
    assert not loaded.exists() and not old.exists()
    assert held.exists() and young.exists()
    assert swept.staging_kept == 2
    assert swept.bytes_freed == 2000
    assert swept.locks_removed == 1
    assert redis_client.exists(orphan_lock) == 0
    assert redis_client.get(live_lock) == b"live-holder"
    assert redis_client.get(other_sink) == b"another-sink-s-holder"  # not this sink's to judge
    redis_client.delete(live_lock, other_sink)


def test_sweep_of_an_empty_or_missing_staging_area_removes_nothing(
    db: psycopg.Connection[tuple[object, ...]],
    redis_client: redis.Redis,
    tmp_path: Path,
    sink_keys: Keys,
) -> None:
    swept = janitor.sweep(tmp_path / "nothing", db, redis_client, sink_keys, max_age_s=DAY)
    assert swept == janitor.Swept((), 0, 0, 0)


def test_cleanup_flow_reports_what_it_removed(
    prefect_api: None,
    db: psycopg.Connection[tuple[object, ...]],
    redis_client: redis.Redis,
    settings: Settings,
    home: Path,
) -> None:
    from flows.cleanup import cleanup

    file_id = uuid.uuid4().hex
    _staged(settings.staging, file_id)
    _ledger(db, file_id)

    result = cleanup()

    assert result["staging_removed"] == (file_id,)
    assert not (settings.staging / file_id).exists()
