"""A file lock in Redis with a lease: two runs never work on one file, a dead holder's lock expires.

    sluice:{<sink>}:lock:file:<file_id>   string  owner token   TTL: the lease, renewed while held

(`checkpoints.Keys.lock`: scoped to the sink the run loads into, like every Sluice key.)

The holder renews the lease from a daemon thread every third of it. A process that dies
(SIGKILL, power loss) stops renewing, so its lock expires one lease later and the next run of
the file proceeds. A holder that finds its lock gone (Redis restarted without persistence)
takes it again if it is free; one that finds another owner has lost it and says so (`lost`):
the ledger still makes the load exactly once, the lock only spares the duplicate work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType

import redis

from sluice.state.checkpoints import Keys

log = logging.getLogger(__name__)

# KEYS[1] lock, ARGV[1] token, ARGV[2] lease in ms: extend only a lock we own.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] lock, ARGV[1] token: delete only a lock we own.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def owner_token() -> str:
    """Who holds a lock: host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class FileLock:
    """`with FileLock(r, keys.lock(file_id), lease_s=30):` or acquire()/release()."""

    def __init__(self, r: redis.Redis, key: str, *, lease_s: float) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.r = r
        self.key = key
        self.lease_ms = max(1, int(lease_s * 1000))
        self.token = owner_token()
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def try_acquire(self) -> bool:
        return bool(self.r.set(self.key, self.token, nx=True, px=self.lease_ms))

    def acquire(
        self, *, wait_s: float, poll_s: float = 0.2, waiting: Callable[[str], None] | None = None
    ) -> bool:
        """Take the lock, waiting up to wait_s for its holder to release it or die.

        `waiting(holder)` is called once if the lock is busy, so the caller can say whom it
        waits for. Returns False when the wait ran out; the heartbeat starts on success.
        """
        deadline = time.monotonic() + wait_s
        told = False
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            if not told and waiting is not None:
                waiting(str(self.holder()))
                told = True
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        self._start_heartbeat()
        return True

    def holder(self) -> str | None:
        value = self.r.get(self.key)
        return value.decode() if isinstance(value, bytes) else None

    def renew(self) -> bool:
        """Extend the lease; retake the lock if it vanished and is free. False when lost."""
        if int(self.r.eval(_RENEW, 1, self.key, self.token, self.lease_ms)):
            return True
        if self.try_acquire():
            log.warning("lock %s had vanished (Redis restarted?); taken again", self.key)
            return True
        return False

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=5)
        try:
            self._drop()
        except redis.exceptions.RedisError as exc:  # the lease ends it anyway
            log.warning("could not release %s (%s); it expires with its lease", self.key, exc)

    def _drop(self) -> None:
        self.r.eval(_RELEASE, 1, self.key, self.token)

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {self.key}", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        interval = self.lease_ms / 3000
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    self.lost = True
                    log.warning("lock %s is held by another run now", self.key)
                    return
            except redis.exceptions.RedisError as exc:
                log.warning("could not renew %s (%s); trying again", self.key, exc)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# KEYS[1] the slots (sorted set: token -> lease end, ms of Redis' clock), KEYS[2] the limit;
# ARGV[1] token, ARGV[2] lease in ms. 1: the token holds a slot now; 0: all slots are taken.
_TAKE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(redis.call('GET', KEYS[2]) or '0')
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if limit > 0 and not held and redis.call('ZCARD', KEYS[1]) >= limit then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return 1
"""
# KEYS[1] the slots; ARGV[1] token, ARGV[2] lease in ms: extend only a slot we still hold.
_RENEW_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not until_ or tonumber(until_) < now then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return 1
"""


class WriterSlot(FileLock):
    """One of a sink's writer slots: at most `limit` loads write at once, across every process
    and machine on the sink's Redis (`set_writers_limit`; no limit set: every load proceeds).

    A slot is a lease like the file lock's: renewed every third of it while held, ended one
    lease after its holder dies. Lease ends are on Redis' clock, so hosts' clocks do not matter.
    `acquire(wait_s=...)` polls for a free slot (FileLock's loop).
    """

    def __init__(self, r: redis.Redis, keys: Keys, *, lease_s: float) -> None:
        super().__init__(r, keys.writers, lease_s=lease_s)
        self.limit_key = keys.writers_limit

    def try_acquire(self) -> bool:
        return bool(self.r.eval(_TAKE_SLOT, 2, self.key, self.limit_key, self.token, self.lease_ms))

    def holder(self) -> str | None:
        return f"{self.r.zcard(self.key)} of {limit(self.r, self.limit_key)} slots in use"

    def renew(self) -> bool:
        if int(self.r.eval(_RENEW_SLOT, 1, self.key, self.token, self.lease_ms)):
            return True
        return self.try_acquire()  # our lease ran out (a stall): take a slot again if free

    def _drop(self) -> None:
        self.r.zrem(self.key, self.token)


def set_writers_limit(r: redis.Redis, keys: Keys, slots: int, *, ttl_s: int = 3600) -> None:
    """How many loads may write to the sink at once; kept while `sluice serve` or a worker
    renews it (each does so on start and every few seconds)."""
    r.set(keys.writers_limit, slots, ex=ttl_s)


def limit(r: redis.Redis, key: str) -> int:
    value = r.get(key)
    return int(value) if value is not None else 0
