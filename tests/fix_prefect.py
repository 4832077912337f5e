"""Prefect on its ephemeral API with a database of its own, once per test session."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.conftest import ADMIN_DSN, PG_PORT
from tests.fix_services import drop_database, recreate_database

PREFECT_TEST_DB = f"prefect_test_{os.getpid()}"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """Prefect's ephemeral API as `prefect_test_harness` starts it (a server subprocess on a free
    port, the process's settings pointed at it), but on a PostgreSQL database of this session in
    the test cluster rather than the harness's SQLite file. On SQLite a busy machine had the
    server wait a minute (its busy timeout) on the database's lock: the engine's retried final
    state came back rejected, without its result (CI at 61ba7fc, `MissingResult`)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    from tests.fix_stack import free_port  # a plugin registered after this one: imported by it

    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
        recreate_database(admin, PREFECT_TEST_DB)
    url = f"postgresql+asyncpg://sluice@127.0.0.1:{PG_PORT}/{PREFECT_TEST_DB}"
    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: url}):
        server = SubprocessASGIServer(port=free_port())
        prior = SubprocessASGIServer._instances.get(None)
        SubprocessASGIServer._instances[None] = server  # code asking for one finds this one
        server.start(timeout=120)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                yield
                _drain()  # the logs and events of the session's runs, while the server answers
        finally:
            server.stop()
            if prior is None:
                SubprocessASGIServer._instances.pop(None, None)
            else:
                SubprocessASGIServer._instances[None] = prior
    drop_database(PREFECT_TEST_DB)


def _drain() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


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
