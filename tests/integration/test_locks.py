"""The Redis file lock on a real Redis: exclusive, renewed while held, expiring with its holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import redis

from sluice.settings import Settings
from sluice.state.checkpoints import Keys
from sluice.state.locks import FileLock

KEYS = Keys("locktest")


def lock_key(name: str) -> str:
    return KEYS.lock(name)


def test_a_held_lock_excludes_a_second_holder_until_released(redis_client: redis.Redis) -> None:
    first = FileLock(redis_client, lock_key("f-exclusive"), lease_s=5)
    second = FileLock(redis_client, lock_key("f-exclusive"), lease_s=5)
    assert first.acquire(wait_s=0)
    try:
        assert not second.acquire(wait_s=0.3)
        assert second.holder() == first.token
    finally:
        first.release()
    assert second.acquire(wait_s=0)
    second.release()
    assert redis_client.exists(lock_key("f-exclusive")) == 0


def test_a_waiting_run_gets_the_lock_when_the_holder_releases(redis_client: redis.Redis) -> None:
    holder = FileLock(redis_client, lock_key("f-wait"), lease_s=5)
    assert holder.acquire(wait_s=0)
    told: list[str] = []
    threading.Timer(0.5, holder.release).start()
    waiter = FileLock(redis_client, lock_key("f-wait"), lease_s=5)
    started = time.monotonic()
    assert waiter.acquire(wait_s=5, poll_s=0.05, waiting=told.append)
    waited = time.monotonic() - started
    waiter.release()
    assert 0.3 < waited < 3
    assert told == [holder.token]


def test_the_heartbeat_keeps_the_lock_past_its_lease(redis_client: redis.Redis) -> None:
    lock = FileLock(redis_client, lock_key("f-beat"), lease_s=0.6)
    assert lock.acquire(wait_s=0)
    try:
        time.sleep(2.0)  # more than three leases
        assert lock.holder() == lock.token
        assert not lock.lost
    finally:
        lock.release()


def test_the_lock_of_a_killed_holder_expires_with_its_lease(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """A separate process takes the lock and dies by SIGKILL: nothing releases it but the lease."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from sluice.state import checkpoints
        from sluice.state.locks import FileLock
        lock = FileLock(checkpoints.client({settings.redis_url.get_secret_value()!r}),
                        {lock_key("f-killed")!r}, lease_s=1.5)
        assert lock.acquire(wait_s=0)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    died = subprocess.run([sys.executable, "-c", script], check=False)
    assert died.returncode == -9
    assert redis_client.exists(lock_key("f-killed")) == 1
    successor = FileLock(redis_client, lock_key("f-killed"), lease_s=5)
    started = time.monotonic()
    assert successor.acquire(wait_s=10, poll_s=0.05)
    successor.release()
    assert time.monotonic() - started < 3


def test_release_never_deletes_another_owners_lock(redis_client: redis.Redis) -> None:
    stale = FileLock(redis_client, lock_key("f-owner"), lease_s=5)
    assert stale.acquire(wait_s=0)
    stale._stop.set()  # its heartbeat stops, as if the process hung
    redis_client.delete(lock_key("f-owner"))  # its lease ran out
    current = FileLock(redis_client, lock_key("f-owner"), lease_s=5)
    assert current.acquire(wait_s=0)
    stale.release()
    assert current.holder() == current.token
    assert not stale.renew()  # the stale owner cannot take it back either
    current.release()


def test_a_lock_that_vanished_is_taken_again_on_renewal(redis_client: redis.Redis) -> None:
    lock = FileLock(redis_client, lock_key("f-vanished"), lease_s=0.6)
    assert lock.acquire(wait_s=0)
    try:
        redis_client.delete(lock_key("f-vanished"))  # e.g. Redis restarted without persistence
        time.sleep(0.6)  # at least one heartbeat
        assert lock.holder() == lock.token
        assert not lock.lost
    finally:
        lock.release()


def test_a_lock_taken_over_by_another_owner_is_reported_lost(redis_client: redis.Redis) -> None:
    lock = FileLock(redis_client, lock_key("f-lost"), lease_s=0.6)
    assert lock.acquire(wait_s=0)
    redis_client.set(lock_key("f-lost"), "someone-else", px=5000)
    time.sleep(0.6)
    assert lock.lost
    lock.release()
    assert redis_client.get(lock_key("f-lost")) == b"someone-else"
    redis_client.delete(lock_key("f-lost"))
