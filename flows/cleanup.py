"""cleanup flow: remove what crashed runs left behind (staging, stage locks), on a schedule."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from sluice.settings import get_settings
from tasks.cleanup import sweep_leftovers


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
