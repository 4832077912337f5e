"""`sluice serve`: the embedded default. One warm process serves Sluice's deployments and runs
the file sensor; runs show in the Prefect UI like any deployment's runs.

Deployments (registered on the Prefect server, no work pool needed):
    ingest-file           a run per complete file the sensor sees (or per `sluice.file.arrived`
                          event of a sensor run alone)
    sweep-inbox           every 5 minutes and when an ingest-file run crashed: files events
                          missed; cleans up
    replay-dead-letters   manual (UI: ids, or all)
    relay-outbox          every minute
    cleanup               hourly

Why not Prefect's own `serve()`: its runner starts a new Python process for every flow run, and
each pays Prefect's import (~3 s here) and Great Expectations' (~9 s here) again, which a
steady stream of small files cannot afford. Here the runs execute in this process's thread
pool, with everything imported once (deployments/executor.py). A complete file in the inbox
becomes an ingest-file run created straight into Pending by this process, named and tagged,
and started at once in a free thread (`Starter`); files wait in the inbox while every thread
is busy. The poller takes the deployments' scheduled runs (a run from the UI, the sweep's, a
schedule's, a trigger's), proposes Pending to claim each (another `sluice serve` on the same
server gets a rejection and skips it), and runs the flow with the run's parameters.
docs/decisions.md has what each way costs the Prefect server per run.

Prometheus metrics of the runs and the sensor: http://<host>:SLUICE_METRICS_PORT/metrics.

Stop with SIGTERM or Ctrl-C: the sensor stops, no new run starts, running ones finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from deployments.executor import WarmExecutor, keep_writers_limit
from deployments.file_sensor import ARRIVED, RESOURCE_MATCH, flush_events, sensor, start_metrics
from deployments.signals import stop_on_signals
from flows.cleanup import cleanup
from flows.ingest_file import ingest_file
from flows.relay_outbox import relay_outbox
from flows.replay import replay
from flows.sweep_inbox import sweep_inbox
from sluice import metrics
from sluice.sensor import Arrival
from sluice.settings import get_settings

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


def deployments() -> list[tuple[Flow[Any, Any], Any]]:
    """(flow, RunnerDeployment) for each deployment `sluice serve` offers. ingest-file has no
    concurrency limit of its own: serve's threads are its limit, and the runs serve's sensor
    creates never pass through the server's limit (they are created Pending)."""
    tags = ["sluice", "served"]
    return [
        (
            ingest_file,
            ingest_file.to_deployment(
                "ingest-file",
                triggers=[arrival_trigger()],  # a sensor run alone emits events
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


class Starter:
    """serve's sensor callback: a complete file becomes an ingest-file run at once, created by
    this process and run in its threads (WarmExecutor.start) once a thread is free.

    What Prefect's own way (a `sluice.file.arrived` event, the deployment's trigger making a
    Scheduled run, a poll, a claim) costs the server per file is measured in docs/decisions.md;
    a file waiting for a thread waits in the inbox (the sensor's queue holds it back), so the
    server holds no backlog of Scheduled runs going Late.
    """

    def __init__(self, executor: WarmExecutor, deployment_id: UUID, stop: threading.Event):
        self.executor = executor
        self.deployment_id = deployment_id
        self.stop = stop
        self._client: SyncPrefectClient | None = None  # the sensor's announcing thread's

    def __call__(self, arrival: Arrival) -> None:
        if not self.executor.wait_for_room(self.stop):
            return  # stopping: the file stays in the inbox for the next start's scan
        if self._client is None:
            self._client = get_client(sync_client=True)
            self._client.__enter__()
        self.executor.start(
            self._client,
            self.deployment_id,
            {"path": arrival.path, "dataset": arrival.dataset},
            name=f"ingest-file/{arrival.dataset}/{Path(arrival.path).name}",
            tags=["sluice", "served", f"dataset:{arrival.dataset}"],
        )
        metrics.ARRIVALS.labels(arrival.dataset).inc()


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
    stop = stop_on_signals(stop or threading.Event())
    writers_chore = keep_writers_limit(writers)
    flows: dict[UUID, Flow[Any, Any]] = {}
    names: dict[str, UUID] = {}
    for flow, deployment in deployments():
        deployment_id = deployment.apply()
        flows[deployment_id] = flow
        names[f"{flow.name}/{deployment.name}"] = deployment_id
    executor = WarmExecutor(flows, workers=concurrency, poll_s=poll_s, housekeeping=writers_chore)
    starter = Starter(executor, names[f"{ingest_file.name}/ingest-file"], stop)
    watcher = sensor(get_settings(), starter) if with_sensor else None
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
