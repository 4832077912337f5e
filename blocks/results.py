"""The Redis result-storage block: stage results persist in Redis, keyed by the stage cache key.

Prefect only accepts result storage saved server-side, so the block is saved (from the
settings' Redis URL, kept secret) before a flow's first task runs, and re-saved only when the
settings changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.locking.protocol import LockManager
from prefect_redis import RedisDatabase, RedisLockManager
from pydantic import SecretStr

from sluice.settings import Settings

RESULTS_BLOCK = "sluice-results"
RESULTS_SLUG = f"redis-database/{RESULTS_BLOCK}"
# Prefect holds a stage's cache lock (`lock:<cache key>`) for the stage's run. Without a hold
# timeout a killed run would hold it forever and the next run of the file would block on it:
# a run that takes the file lock clears its file's stage locks (their holder is dead), and the
# hold timeout is the last resort.
STAGE_LOCK_HOLD_S = 3600.0


class LeasedRedisLockManager(RedisLockManager):  # type: ignore[misc]
    """prefect-redis's lock manager whose locks expire, so a dead holder cannot block forever."""

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        return bool(
            super().acquire_lock(key, holder, acquire_timeout, hold_timeout or STAGE_LOCK_HOLD_S)
        )

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        return bool(
            await super().aacquire_lock(
                key, holder, acquire_timeout, hold_timeout or STAGE_LOCK_HOLD_S
            )
        )


def lock_manager(settings: Settings) -> LeasedRedisLockManager:
    return LeasedRedisLockManager(connection_url=settings.redis_url.get_secret_value())


class LazyLockManager:
    """A lock manager made on first use by `make` (once: callers serialize it), so that what
    holds one (the stage tasks' cache policy, made when tasks/ is imported) reads no settings
    and builds no Redis client at import. Prefect's LockManager protocol, delegated as it is."""

    def __init__(self, make: Callable[[], LockManager]) -> None:
        self._make = make

    def acquire_lock(self, *args: Any, **kwargs: Any) -> bool:
        return self._make().acquire_lock(*args, **kwargs)

    async def aacquire_lock(self, *args: Any, **kwargs: Any) -> bool:
        return await self._make().aacquire_lock(*args, **kwargs)

    def release_lock(self, *args: Any, **kwargs: Any) -> None:
        self._make().release_lock(*args, **kwargs)

    def is_locked(self, *args: Any, **kwargs: Any) -> bool:
        return self._make().is_locked(*args, **kwargs)

    def is_lock_holder(self, *args: Any, **kwargs: Any) -> bool:
        return self._make().is_lock_holder(*args, **kwargs)

    def wait_for_lock(self, *args: Any, **kwargs: Any) -> bool:
        return self._make().wait_for_lock(*args, **kwargs)

    async def await_for_lock(self, *args: Any, **kwargs: Any) -> bool:
        return await self._make().await_for_lock(*args, **kwargs)


def stage_lock_name(cache_key: str) -> str:
    """The Redis key prefect-redis locks a cache key under."""
    name: Any = RedisLockManager._lock_name_for_key(cache_key)
    return str(name)


_ENSURED: dict[tuple[str, str, int], RedisDatabase] = {}


def ensure_result_storage(settings: Settings) -> RedisDatabase:
    """The saved block: saved unless an identical one is already there; once per process and
    Prefect API (a warm `sluice serve` process does not ask the server again for every run)."""
    from prefect.settings import get_current_settings

    url = settings.redis_url.get_secret_value()
    key = (str(get_current_settings().api.url), url, settings.result_ttl_s)
    if key in _ENSURED:
        return _ENSURED[key]
    wanted = RedisDatabase(connection_url=SecretStr(url), key_ttl=settings.result_ttl_s)
    try:
        current = RedisDatabase.load(RESULTS_BLOCK)
    except ValueError:  # no such block yet
        current = None
    if current is None or not _same(current, wanted):
        wanted.save(RESULTS_BLOCK, overwrite=True)
        current = wanted
    _ENSURED[key] = current
    return current


def _same(a: RedisDatabase, b: RedisDatabase) -> bool:
    url_a = a.connection_url.get_secret_value() if a.connection_url else None
    url_b = b.connection_url.get_secret_value() if b.connection_url else None
    return url_a == url_b and a.key_ttl == b.key_ttl
