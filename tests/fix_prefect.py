"""Prefect on its ephemeral API with a temporary database, once per test session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def ingest(prefect_api: None, database: str, redis_client: redis.Redis, home: Path) -> Any:
    """`ingest(path, dataset=None)`: run the ingest-file flow in this process; its final state."""
    from flows.ingest_file import ingest_file

    def run(path: Path, dataset: str | None = None) -> Any:
        return ingest_file(path=str(path), dataset=dataset, return_state=True)

    return run


@pytest.fixture
def per_stage(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file runs one task per stage (as a file of SLUICE_FUSE_BELOW_BYTES or more does
    with SLUICE_ONE_PASS=false, or in a dataset whose failing rows are set aside)."""
    monkeypatch.setattr(settings, "fuse_below_bytes", 0)
    monkeypatch.setattr(settings, "one_pass", False)


def task_states(flow_run_id: Any, timeout_s: float = 15, quiet_s: float = 2) -> dict[str, str]:
    """State name of each task of a finished flow run, by task name (`read` -> `Cached`).

    The server records task runs and their states from the run's events, after the run has
    ended (in batches flushed every second, later still on a busy machine): a task may show
    unfinished, or not at all yet. This waits until every task shown is final and nothing has
    changed for `quiet_s`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[str, tuple[str, bool]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        return {
            r.task_key.split("-")[0]: (r.state.name, r.state.is_final()) for r in runs if r.state
        }

    deadline = time.monotonic() + timeout_s
    last: dict[str, tuple[str, bool]] | None = None
    since = time.monotonic()
    while True:
        states = asyncio.run(read())
        if states != last:
            last, since = states, time.monotonic()
        settled = all(final for _, final in states.values())
        if (settled and time.monotonic() - since >= quiet_s) or time.monotonic() > deadline:
            return {task: name for task, (name, _) in states.items()}
        time.sleep(0.1)
