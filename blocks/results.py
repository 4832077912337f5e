"""The Redis result-storage block: stage results persist in Redis, keyed by the stage cache key.

Prefect only accepts result storage saved server-side, so the block is saved (from the
settings' Redis URL, kept secret) before a flow's first task runs, and re-saved only when the
settings changed.
"""

from __future__ import annotations

from prefect_redis import RedisDatabase
from pydantic import SecretStr

from sluice.settings import Settings

RESULTS_BLOCK = "sluice-results"
RESULTS_SLUG = f"redis-database/{RESULTS_BLOCK}"


def ensure_result_storage(settings: Settings) -> None:
    """Save the block unless an identical one is already there."""
    wanted = RedisDatabase(
        connection_url=SecretStr(settings.redis_url.get_secret_value()),
        key_ttl=settings.result_ttl_s,
    )
    try:
        current = RedisDatabase.load(RESULTS_BLOCK)
    except ValueError:  # no such block yet
        current = None
    if current is not None and _same(current, wanted):
        return
    wanted.save(RESULTS_BLOCK, overwrite=True)


def _same(a: RedisDatabase, b: RedisDatabase) -> bool:
    url_a = a.connection_url.get_secret_value() if a.connection_url else None
    url_b = b.connection_url.get_secret_value() if b.connection_url else None
    return url_a == url_b and a.key_ttl == b.key_ttl
