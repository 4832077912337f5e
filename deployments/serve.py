"""`sluice serve`: the embedded default. One warm process serves Sluice's deployments and runs
the file sensor; runs show in the Prefect UI like any deployment's runs.

Deployments (registered on the Prefect server, no work pool needed):
    ingest-file           triggered by `sluice.file.arrived` (one run per file version)
    sweep-inbox           every 5 minutes and when an ingest-file run crashed: files events
                          missed; cleans up
    replay-dead-letters   manual (UI: ids, or all)
    relay-outbox          every minute
    cleanup               hourly

Why not Prefect's own `serve()`: its runner starts a new Python process for every flow run, and
each pays Prefect's import (~3 s here) and Great Expectations' (~9 s here) again, which a
steady stream of small files cannot afford. Here the runs execute in this process's thread
pool, with everything imported once: the poller takes the deployments' scheduled runs (the
trigger makes them within ~0.2 s of the event), proposes Pending to claim each (another
`sluice serve` on the same server gets a rejection and skips it), and runs the flow with the
run's parameters. A run from the UI ("Run" on a deployment) is executed the same way.

Prometheus metrics of the runs and the sensor: http://<host>:SLUICE_METRICS_PORT/metrics.

Stop with SIGTERM or Ctrl-C: the sensor stops, no new run starts, running ones finish.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.exceptions import Abort
from prefect.flow_engine import run_flow
from prefect.states import Pending
from prefect.utilities.engine import propose_state_sync

from deployments.file_sensor import ARRIVED, RESOURCE_MATCH, flush_events, sensor, start_metrics
from flows.cleanup import cleanup
from flows.ingest_file import ingest_file
from flows.relay_outbox import relay_outbox
from flows.replay import replay
from flows.sweep_inbox import sweep_inbox
from sluice.settings import get_settings
from tasks.load import WRITERS_LIMIT
from tasks.policy import hold_client

log = logging.getLogger("sluice.serve")


def arrival_trigger() -> DeploymentEventTrigger:
    """One ingest-file run per `sluice.file.arrived` event, with the event's path and dataset."""
    return DeploymentEventTrigger(
        name="file arrived",
        expect={ARRIVED},
        match={"prefect.resource.id": RESOURCE_MATCH},
        for_each={"prefect.resource.id"},
        parameters={"path": "{{ event.payload.path }}", "dataset": "{{ event.payload.dataset }}"},
    )


def crashed_trigger() -> DeploymentEventTrigger:
    """A sweep when an ingest-file run crashed (its worker died, or Prefect marked it a zombie):
    the sweep starts a new run of its file, since the lock's lease has expired by then."""
    return DeploymentEventTrigger(
        name="an ingest-file run crashed",
        expect={"prefect.flow-run.Crashed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.role": "flow", "prefect.resource.name": "ingest-file"},
    )


def deployments(concurrency: int) -> list[tuple[Flow[Any, Any], Any]]:
    """(flow, RunnerDeployment) for each deployment `sluice serve` offers."""
    tags = ["sluice", "served"]
    return [
        (
            ingest_file,
            ingest_file.to_deployment(
                "ingest-file",
                triggers=[arrival_trigger()],
                concurrency_limit=concurrency,
                tags=tags,
                description="One file into its dataset's hypertable (sensor events trigger it).",
            ),
        ),
        (
            sweep_inbox,
            sweep_inbox.to_deployment(
                "sweep-inbox",
                cron="*/5 * * * *",
                triggers=[crashed_trigger()],
                concurrency_limit=1,  # sweeps one after another: two would both start a file
                tags=tags,
                description="Start runs for waiting files events missed; clean up leftovers.",
            ),
        ),
        (
            replay,
            replay.to_deployment(
                "replay-dead-letters",
                tags=tags,
                description="Put quarantined files back and ingest them again (ids, or all).",
            ),
        ),
        (
            relay_outbox,
            relay_outbox.to_deployment(
                "relay-outbox",
                interval=60,
                tags=tags,
                description="Publish outbox events to Redis sluice:events and Prefect.",
            ),
        ),
        (
            cleanup,
            cleanup.to_deployment(
                "cleanup",
                cron="17 * * * *",
                tags=tags,
                description="Remove staging and stage locks crashed runs left behind.",
            ),
        ),
    ]


def ensure_writers_limit(limit: int) -> None:
    """The global concurrency limit on concurrent TimescaleDB loads (tasks/load.py takes it)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=WRITERS_LIMIT, limit=limit)
            )
        except ObjectAlreadyExists:
            pass


@dataclass
class WarmExecutor:
    """Runs the scheduled runs of some deployments in this process's threads.

    The claim is the server's: a run is ours once our proposal of Pending is accepted; a second
    claimant (another process, another host) is rejected, so no run executes twice. `who`
    names this process on each run it claims (the run's infrastructure pid in the UI).
    `housekeeping` runs every `housekeeping_s` on the polling client (worker heartbeats,
    re-reading the deployments).
    """

    flows: dict[UUID, Flow[Any, Any]]
    workers: int
    poll_s: float = 0.5
    who: str | None = None
    housekeeping: Callable[[SyncPrefectClient], None] | None = None
    housekeeping_s: float = 10.0
    started: int = 0
    finished: int = 0
    _running: dict[UUID, Future[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
            limit=room * 2,
        )
        started = 0
        runs = [FlowRun.model_validate(r.model_dump()) for r in due]
        for run in sorted(runs, key=lambda r: r.next_scheduled_start_time or r.created or 0):
            if started >= room:
                break
            if run.id in self._running or not self._claim(client, run):
                continue
            if self.who is not None:
                client.update_flow_run(run.id, infrastructure_pid=self.who)
            self._submit(run)
            started += 1
        return started

    @staticmethod
    def _claim(client: SyncPrefectClient, run: FlowRun) -> bool:
        """Pending, or a rejection when someone else took it (or a limit holds it back)."""
        try:
            state = propose_state_sync(client, Pending(), flow_run_id=run.id)
        except Abort:
            return False
        return state.is_pending()

    def _submit(self, run: FlowRun) -> None:
        assert run.deployment_id is not None
        flow = self.flows[run.deployment_id]
        log.info("run %s (%s) starts", run.name, flow.name)
        future = self._pool.submit(
            run_flow, flow, flow_run=run, parameters=run.parameters, return_type="state"
        )
        with self._lock:
            self._running[run.id] = future
            self.started += 1
        run_id = run.id
        future.add_done_callback(lambda _f: self._done(run_id))

    def _done(self, run_id: UUID) -> None:
        with self._lock:
            self._running.pop(run_id, None)
            self.finished += 1

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


def serve(
    *,
    concurrency: int = 4,
    writers: int = 4,
    poll_s: float = 0.5,
    with_sensor: bool = True,
    stop: threading.Event | None = None,
    on_ready: Callable[[dict[str, UUID]], None] | None = None,
) -> None:
    """Register the deployments, run the sensor and execute runs until `stop` (or a signal)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    ensure_writers_limit(writers)
    flows: dict[UUID, Flow[Any, Any]] = {}
    names: dict[str, UUID] = {}
    for flow, deployment in deployments(concurrency):
        deployment_id = deployment.apply()
        flows[deployment_id] = flow
        names[f"{flow.name}/{deployment.name}"] = deployment_id
    executor = WarmExecutor(flows, workers=concurrency, poll_s=poll_s)
    watcher = sensor(get_settings()) if with_sensor else None
    metrics_server = start_metrics(get_settings(), watcher, stop)
    sensor_thread = None
    if watcher is not None:
        sensor_thread = threading.Thread(
            target=watcher.run, args=(stop,), name="sluice-sensor", daemon=True
        )
        sensor_thread.start()
    if on_ready is not None:
        on_ready(names)
    try:
        executor.run(stop)
    finally:
        stop.set()
        if sensor_thread is not None:
            sensor_thread.join(timeout=30)
        executor.shutdown()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        flush_events()
        log.info("stopped after %d run(s)", executor.finished)

