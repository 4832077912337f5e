"""The sink's writer slots (a semaphore with leases in Redis): at most the limit of loads write
at once, across processes; a dead holder's slot frees itself; a load waits for a slot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from sluice import catalog
from sluice.read import fingerprint
from sluice.state.checkpoints import Keys
from sluice.state.locks import WriterSlot, set_writers_limit
from tests.data import weather_csv

pytestmark = pytest.mark.services

KEYS = Keys("writerstest")


@pytest.fixture
def slots(redis_client: redis.Redis) -> Any:
    redis_client.delete(KEYS.writers, KEYS.writers_limit)
    yield lambda lease_s=5.0: WriterSlot(redis_client, KEYS, lease_s=lease_s)
    redis_client.delete(KEYS.writers, KEYS.writers_limit)


def test_at_most_the_limit_hold_a_slot_until_one_is_released(
    redis_client: redis.Redis, slots: Any
) -> None:
    set_writers_limit(redis_client, KEYS, 2)
    first, second, third = slots(), slots(), slots()

    assert first.acquire(wait_s=0) and second.acquire(wait_s=0)
    assert not third.acquire(wait_s=0.3)
    assert third.holder() == "2 of 2 slots in use"
    first.release()
    assert third.acquire(wait_s=1)
    second.release()
    third.release()
    assert redis_client.zcard(KEYS.writers) == 0


def test_a_dead_holder_s_slot_frees_itself_after_its_lease(
    redis_client: redis.Redis, slots: Any
) -> None:
    set_writers_limit(redis_client, KEYS, 1)
    dead = slots(lease_s=0.5)
    assert dead.try_acquire()  # taken, never renewed: its process died
    waiter = slots()

    started = time.monotonic()
    assert waiter.acquire(wait_s=5)

    assert 0.3 < time.monotonic() - started < 3
    waiter.release()


def test_a_held_slot_is_renewed_past_its_lease(redis_client: redis.Redis, slots: Any) -> None:
    set_writers_limit(redis_client, KEYS, 1)
    holder = slots(lease_s=0.6)
    assert holder.acquire(wait_s=0)
    time.sleep(1.5)  # two and a half leases: the heartbeat kept it
    assert not slots().acquire(wait_s=0)
    assert not holder.lost
    holder.release()


def test_without_a_limit_every_load_gets_a_slot(redis_client: redis.Redis, slots: Any) -> None:
    many = [slots() for _ in range(10)]
    assert all(slot.acquire(wait_s=0) for slot in many)
    for slot in many:
        slot.release()


@pytest.mark.flow
def test_a_load_waits_while_the_writer_slots_are_taken(
    ingest: Any, db: Any, home: Path, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    set_writers_limit(redis_client, sink_keys, 1)
    other = WriterSlot(redis_client, sink_keys, lease_s=30)  # another worker is writing
    path = weather_csv(home / "inbox" / "limited" / "a.csv", rows=200)
    file_id, _ = fingerprint(path)
    states: list[Any] = []
    assert other.acquire(wait_s=0)
    try:
        with _heard("waiting for a writer slot") as waiting:  # tasks/load.py's line
            runner = threading.Thread(target=lambda: states.append(ingest(path)))
            runner.start()
            assert waiting.wait(300)
        # prepare (read..transform of a small file) stored its result: only load is left ...
        assert redis_client.keys(f"{sink_keys.prefix}result:prepare:*:{file_id}:*")
        assert runner.is_alive()  # ... and the load waits for the writer slot
        assert not catalog.is_loaded(db, file_id)
    finally:
        other.release()
    runner.join(timeout=120)
    redis_client.delete(sink_keys.writers_limit)

    assert states and states[0].is_completed()
    assert catalog.is_loaded(db, file_id)


@contextmanager
def _heard(text: str) -> Iterator[threading.Event]:
    """An event set once a task run logs a line containing `text` (in this process)."""
    heard = threading.Event()

    class Listener(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                heard.set()

    listener = Listener()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(listener)
    try:
        yield heard
    finally:
        logger.removeHandler(listener)
