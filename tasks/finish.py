"""How a file's run ends: clean up after a committed load, or quarantine after a terminal error;
either then relays the outbox's events."""

from __future__ import annotations

import redis
from prefect import get_run_logger

from sluice import quarantine, staging
from sluice.contracts import FileRef
from sluice.errors import SluiceError
from sluice.settings import get_settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from tasks.policy import CACHED_STAGES, result_key, stage_task
from tasks.relay import relay_events


def _forget(ref: FileRef) -> redis.Redis:
    """Remove the file's staged Parquet and the cached stage results that point at it."""
    settings = get_settings()
    staging.remove(settings.staging, ref.file_id)
    r = checkpoints.client(settings.redis_url.get_secret_value())
    keys = [result_key(stage, version, ref) for stage, version in CACHED_STAGES.items()]
    checkpoints.forget_results(r, keys)
    return r


@stage_task("restage")
def restage(ref: FileRef) -> None:
    """Staged data of an earlier attempt is gone: forget its results so the stages run again."""
    _forget(ref)
    get_run_logger().warning("staged data of %s was gone; staging it again", ref.path)


@stage_task("cleanup")
def cleanup(ref: FileRef) -> None:
    """The load committed: staged Parquet and the stage results that point at it can go."""
    r = _forget(ref)
    keys = Keys(ref.sink)
    checkpoints.remember_handled(r, keys, ref.path, ref.file_id, ttl_s=get_settings().result_ttl_s)
    checkpoints.set_status(
        r,
        keys,
        ref.file_id,
        ttl_s=get_settings().result_ttl_s,
        status="loaded",
        stage="load",
        dataset=ref.dataset,
        path=ref.path,
    )
    relay_now()


@stage_task("quarantine")
def quarantine_file(ref: FileRef, error: SluiceError, attempts: int = 1) -> str:
    """Keep the file under quarantine/<dataset>/ and record a dead letter; returns where it went."""
    kept = quarantine.run(ref, error, attempts=attempts, settings=get_settings())
    get_run_logger().error("quarantined %s as %s: %s", ref.path, kept, error)
    relay_now()
    return str(kept)


def relay_now() -> None:
    """Publish the outbox's events (this file's among them) from the task that ends the run: a
    task run of its own cost the Prefect server as much as a small file's stages. A relay that
    fails leaves them in the outbox for the next one (the relay-outbox flow, every minute)."""
    try:
        relay_events.fn()
    except Exception as exc:  # noqa: BLE001 - the run's work is done; the events are safe
        get_run_logger().warning("events stay in the outbox for the next relay: %s", exc)
