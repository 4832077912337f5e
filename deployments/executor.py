"""The warm executor of `sluice serve` and `sluice worker`: flow runs in this process's threads,
with everything imported once.

Why not Prefect's own runner: it starts a new Python process for every flow run, and each pays
Prefect's import (~3 s here) and Great Expectations' (~9 s here) again, which a steady stream of
small files cannot afford. The executor polls its deployments' scheduled runs (a run from the
UI, the sweep's, a schedule's, a trigger's), proposes Pending to claim each (another claimant
gets a rejection and skips it), and runs the flow with the run's parameters; `start` creates a
run straight into Pending and runs it at once (serve's sensor). docs/decisions.md has what each
way costs the Prefect server per run.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import Flow, flow_engine
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.context import SettingsContext, get_settings_context
from prefect.exceptions import Abort
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY
from prefect.states import Cancelled, Pending
from prefect.utilities.engine import propose_state_sync

from blocks.results import ensure_result_storage
from sluice.settings import get_settings
from tasks.policy import hold_client

log = logging.getLogger("sluice.serve")


def keep_writers_limit(limit: int) -> Callable[[SyncPrefectClient], None]:
    """Set the sink's writer slots (tasks/load.py takes one per load) and return the chore
    that keeps the setting alive (it expires an hour after the last serve or worker left)."""
    from sluice import ledger
    from sluice.state import checkpoints
    from sluice.state.locks import set_writers_limit

    settings = get_settings()
    keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    r = checkpoints.client(settings.redis_url.get_secret_value())

    def renew(_client: SyncPrefectClient) -> None:
        set_writers_limit(r, keys, limit)

    set_writers_limit(r, keys, limit)
    return renew


@dataclass
class WarmExecutor:
    """Runs the runs of some deployments in this process's threads: the scheduled ones it polls
    for, and the ones `start` creates (serve's sensor).

    The claim of a polled run is the server's: a run is ours once our proposal of Pending is
    accepted; a second claimant (another process, another host) is rejected, so no run executes
    twice. `who` names this process on each run it claims (the run's infrastructure pid in the
    UI). `housekeeping` runs every `housekeeping_s` on the polling client (worker heartbeats,
    re-reading the deployments).

    With `run_heartbeats` False (serve) a run sends no heartbeats. `sluice worker` keeps them
    (True): the zombie automation that crashes a dead worker's runs needs them. Either way a
    run does not wait for its heartbeat thread at its end (Prefect's sync engine did, up to
    1 s: `_heartbeats_unjoined` below; docs/decisions.md).
    """

    flows: dict[UUID, Flow[Any, Any]]
    workers: int
    poll_s: float = 0.5
    who: str | None = None
    housekeeping: Callable[[SyncPrefectClient], None] | None = None
    housekeeping_s: float = 10.0
    run_heartbeats: bool = False
    started: int = 0
    finished: int = 0
    _running: dict[UUID, tuple[FlowRun, Future[Any]]] = field(default_factory=dict)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="sluice-run", initializer=hold_client
        )

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def poll_once(self, client: SyncPrefectClient) -> int:
        """Claim and start the due runs there is room for; returns how many started."""
        room = self.workers - self.busy
        if room <= 0:
            return 0
        due = client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(self.flows),
            scheduled_before=datetime.now(UTC) + timedelta(seconds=1),
            limit=max(room * 2, BACKLOG_SEEN),
        )
        started = 0
        runs = sorted(
            (FlowRun.model_validate(r.model_dump()) for r in due),
            key=lambda r: r.next_scheduled_start_time or r.created or 0,
        )
        runs = self._superseding(client, runs)
        for run in runs:
            if started >= room:
                break
            if run.id in self._running or not self._claim(client, run):
                continue
            if self.who is not None:
                client.update_flow_run(run.id, infrastructure_pid=self.who)
            self._submit(run)
            started += 1
        return started

    def _superseding(self, client: SyncPrefectClient, runs: list[FlowRun]) -> list[FlowRun]:
        """The due runs (oldest first) but those a later due run of the same deployment with the
        same parameters repeats: cancelled, not run. A schedule that fell due many times while
        nobody served it (relay-outbox every minute, the sweep every five) leaves a backlog;
        each of those flows does all its pending work in one run (measured: a serve started
        after some minutes down ran 35 relay-outbox runs, as many flow and task runs)."""
        newest = {_work(run): run.id for run in runs}
        kept = set(newest.values())
        for run in runs:
            if run.id not in kept and run.id not in self._running:
                _propose(client, run, Cancelled(message=SUPERSEDED))
        return [run for run in runs if run.id in kept]

    @staticmethod
    def _claim(client: SyncPrefectClient, run: FlowRun) -> bool:
        """Pending, or a rejection when someone else took it (or a limit holds it back)."""
        try:
            state = propose_state_sync(client, Pending(), flow_run_id=run.id)
        except Abort:
            return False
        return state.is_pending()

    def wait_for_room(self, stop: threading.Event) -> bool:
        """Block until a thread is free (True) or `stop` is set (False): the sensor's
        backpressure, so files wait in the inbox, not as a backlog of runs on the server."""
        with self._lock:
            while len(self._running) >= self.workers:
                if stop.is_set():
                    return False
                self._lock.wait(0.5)
        return not stop.is_set()

    def start(
        self,
        client: SyncPrefectClient,
        deployment_id: UUID,
        parameters: dict[str, Any],
        *,
        name: str,
        tags: list[str],
    ) -> FlowRun:
        """A run of the deployment created straight into Pending, named and tagged, and run
        here at once: no Scheduled state, no claim, no wait for a poll. Call `wait_for_room`
        first; a run created past the room waits in the pool's queue."""
        created = client.create_flow_run_from_deployment(
            deployment_id, parameters=parameters, state=Pending(), name=name, tags=tags
        )
        run = FlowRun.model_validate(created.model_dump())
        self._submit(run, named=True)
        return run

    def _submit(self, run: FlowRun, named: bool = False) -> None:
        assert run.deployment_id is not None
        flow = self.flows[run.deployment_id]
        if named:  # named at creation: the engine need not rename it (an API call per run)
            flow = _unnamed(flow)
        flow = _stored(flow, ensure_result_storage(get_settings()))
        log.debug("run %s (%s) starts", run.name, flow.name)
        with self._lock:
            future = self._pool.submit(_execute, flow, run, self.run_heartbeats)
            self._running[run.id] = (run, future)
            self.started += 1
        run_id = run.id
        future.add_done_callback(lambda _f: self._done(run_id))

    def _done(self, run_id: UUID) -> None:
        with self._lock:
            self._running.pop(run_id, None)
            self.finished += 1
            self._lock.notify_all()

    def run(self, stop: threading.Event) -> None:
        chores_due = 0.0
        with get_client(sync_client=True) as client:
            while not stop.is_set():
                try:
                    if self.housekeeping is not None and time.monotonic() >= chores_due:
                        self.housekeeping(client)
                        chores_due = time.monotonic() + self.housekeeping_s
                    self.poll_once(client)
                except Exception:  # noqa: BLE001 - the server restarting must not end serve
                    log.exception("polling the Prefect server failed; trying again")
                    stop.wait(5)
                stop.wait(self.poll_s)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


_STORED: dict[tuple[int, int], tuple[Any, Any, Flow[Any, Any]]] = {}


def _stored(flow: Flow[Any, Any], block: Any) -> Flow[Any, Any]:
    """The flow with the saved result-storage block as its own: Prefect asks the server for its
    default result storage (a request per run) only for a flow that has none. One copy per
    flow and block, kept with both (a block is not hashable)."""
    kept = _STORED.get((id(flow), id(block)))
    if kept is None or kept[0] is not flow or kept[1] is not block:
        kept = (flow, block, flow.with_options(result_storage=block))
        _STORED[(id(flow), id(block))] = kept
    return kept[2]


BACKLOG_SEEN = 25  # due runs read per poll at least: most of a schedule's backlog at once


SUPERSEDED = "superseded: a later scheduled run of this deployment does the same work"


def _work(run: FlowRun) -> tuple[Any, str]:
    """What a run does: its deployment and parameters."""
    return run.deployment_id, json.dumps(run.parameters, sort_keys=True, default=str)


def _propose(client: SyncPrefectClient, run: FlowRun, state: Any) -> None:
    """Propose a state; another process may have taken the run meanwhile (then it is theirs)."""
    try:
        propose_state_sync(client, state, flow_run_id=run.id)
    except Abort:
        return


@functools.cache
def _unnamed(flow: Flow[Any, Any]) -> Flow[Any, Any]:
    """The flow without its run-name function, for runs named when they were created."""
    copy = flow.with_options()
    copy.flow_run_name = None
    return copy


def _execute(flow: Flow[Any, Any], run: FlowRun, heartbeats: bool) -> Any:
    """Run the flow run here, to its final state (without a heartbeat thread unless asked);
    an async flow on an event loop of its own."""
    settings = get_settings_context().settings if heartbeats else _without_heartbeats()
    with SettingsContext(profile=get_settings_context().profile, settings=settings):
        state = run_flow(flow, flow_run=run, parameters=run.parameters, return_type="state")
        return asyncio.run(state) if inspect.iscoroutine(state) else state


@functools.cache
def _without_heartbeats() -> Any:
    """This process's Prefect settings with flow-run heartbeats off, made once (a settings
    copy per run cost 10 % of serve's CPU)."""
    return get_settings_context().settings.copy_with_update(
        updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    )


@contextmanager
def _no_suspension_observer(*_args: Any, **_kwargs: Any) -> Iterator[None]:
    yield


# Prefect 3.8 watches every deployment run for a `Suspended` state from the UI: per run a
# thread, an event loop, an async client and an events websocket, joined at the run's end
# (measured: 15 % of serve's CPU). Sluice's flows are never suspended (a Pause would leave a
# file half-way; cancel and replay instead), so the runs of this process are not watched.
setattr(flow_engine, "observe_flow_run_suspension", _no_suspension_observer)  # noqa: B010

_prefect_heartbeats = flow_engine._send_heartbeats


@contextmanager
def _heartbeats_unjoined(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
    """Prefect's heartbeat thread for a run, not joined at the run's end, as Prefect's async
    engine does: the sync engine waits for the thread, which sleeps in 1 s steps, so each run of
    `sluice worker` held its thread up to 1 s after its last stage. The thread stops itself at
    its next step and sends nothing for a run in a final state."""
    del join_on_exit
    with _prefect_heartbeats(engine, join_on_exit=False):
        yield


# The runs of this process (serve's and `sluice worker`'s threads, `sluice ingest`) do not wait
# for their heartbeat threads; those that send heartbeats (the worker's) still send them.
setattr(flow_engine, "_send_heartbeats", _heartbeats_unjoined)  # noqa: B010
