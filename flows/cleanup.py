"""cleanup flow: remove what crashed runs left behind (staging, stage locks), on a schedule."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger, task

from sluice import catalog, ledger
from sluice.settings import get_settings
from sluice.state import checkpoints, janitor
from sluice.translate import translating


@task(name="sweep-leftovers", retries=2, retry_delay_seconds=5)
def sweep_leftovers(max_age_hours: float) -> janitor.Swept:
    settings = get_settings()
    with (
        translating(file=str(settings.staging), stage="cleanup"),
        catalog.connect(settings.dsn()) as conn,
        checkpoints.client(settings.redis_url.get_secret_value()) as r,
    ):
        keys = ledger.keys(conn, settings.schema_name)
        return janitor.sweep(settings.staging, conn, r, keys, max_age_s=max_age_hours * 3600)


@flow(name="cleanup", persist_result=False)
def cleanup(max_age_hours: float | None = None) -> dict[str, object]:
    """Remove staging of loaded or long-dead runs, and stage locks no live run holds.

    max_age_hours: staging of a file that is not loaded is kept this long (default: the
    lifetime of stage results, after which a new run stages the file again anyway).
    """
    hours = max_age_hours if max_age_hours is not None else get_settings().result_ttl_s / 3600
    swept = sweep_leftovers(hours)
    get_run_logger().info(
        "removed staging of %d file(s) (%.1f MB), kept %d; removed %d orphaned stage lock(s)",
        len(swept.staging_removed),
        swept.bytes_freed / 1e6,
        swept.staging_kept,
        swept.locks_removed,
    )
    return asdict(swept)
