"""The runs of serve's and `sluice worker`'s threads (deployments/executor.py): a run that sends
heartbeats still sends them, and its end does not wait for its heartbeat thread (Prefect's sync
engine joins it, sleeping in 1 s steps; its async engine does not)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.fix_stack import wait_for

pytestmark = [pytest.mark.flow]


def _heartbeat_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads started since `before` that still run Prefect's heartbeat loop (the engine
    starts it as `Thread(target=context.run)`)."""
    return [t for t in threading.enumerate() if t not in before and t.name.endswith("(run)")]


def test_a_run_with_heartbeats_sends_them_and_ends_before_its_heartbeat_thread(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow, flow_engine
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.states import Pending

    from deployments import executor

    sent: list[Any] = []
    emit = flow_engine.BaseFlowRunEngine._emit_flow_run_heartbeat

    def counted(engine: Any, *args: Any, **kwargs: Any) -> None:
        sent.append(engine.flow_run.id)
        emit(engine, *args, **kwargs)

    monkeypatch.setattr(flow_engine.BaseFlowRunEngine, "_emit_flow_run_heartbeat", counted)

    @flow(name="beating", persist_result=False)
    def beating() -> int:
        return 1

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        with get_client(sync_client=True) as client:
            warm, run = (client.create_flow_run(beating, state=Pending()) for _ in range(2))
        executor._execute(beating, warm, heartbeats=True)  # Prefect's own threads start once
        wait_for(lambda: not _heartbeat_threads(set()), 10, "the first run's heartbeat thread")
        before = set(threading.enumerate())

        state = executor._execute(beating, run, heartbeats=True)
        unjoined = _heartbeat_threads(before)

    assert state.is_completed()
    assert sent.count(run.id) == 1  # one at the start: the run took less than 30 s
    assert unjoined and all(t.is_alive() for t in unjoined), "the run waited for the thread"
    wait_for(
        lambda: not any(t.is_alive() for t in unjoined), 5, "the heartbeat thread to stop itself"
    )
    assert sent.count(run.id) == 1  # nothing sent for the run once it ended
