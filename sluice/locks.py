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
                holder = self.r.get(self.key)
                waiting(holder.decode() if isinstance(holder, bytes) else str(holder))
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
            self.r.eval(_RELEASE, 1, self.key, self.token)
        except redis.exceptions.RedisError as exc:  # the lease ends it anyway
            log.warning("could not release %s (%s); it expires with its lease", self.key, exc)

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
