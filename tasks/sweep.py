"""find-waiting: the sweep's selection (sluice.sweep) with the runs Prefect already has queued."""

from __future__ import annotations

from prefect import task

from sluice import sweep
from sluice.settings import get_settings


def queued_paths() -> set[str]:
    """Paths of ingest-file runs that are scheduled, pending or running: an event (or an earlier
    sweep) already asked for them, and a backlog may keep them waiting for minutes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    live = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(
                any_=[StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING]
            )
        )
    )
    paths: set[str] = set()
    with get_client(sync_client=True) as client:
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest-file"])),
                flow_run_filter=live,
                limit=200,
                offset=offset,
            )
            paths.update(str(run.parameters.get("path")) for run in page)
            if len(page) < 200:
                return paths
            offset += len(page)


@task(name="find-waiting", retries=2, retry_delay_seconds=2)
def find_waiting(quiet_s: float) -> sweep.Found:
    return sweep.select(get_settings(), queued_paths, quiet_s)
