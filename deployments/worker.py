"""`sluice worker`: a warm worker of a Prefect work pool (`sluice` by default).

Any number of these, on any number of machines, execute the runs of Sluice's deployments in
the pool (`prefect deploy --all` from prefect.yaml puts them there). Each is `sluice serve`'s
executor without the sensor and the registrations: it polls the pool's deployments for
scheduled runs, claims each by proposing Pending (the server accepts one claimant; the others
are rejected, and the deployment's concurrency limit is enforced on that same transition, so
the limit holds across all workers), and runs it in a thread with everything imported once.
Prefect's own `prefect worker start --pool sluice` works on the same pool, and starts a new
process (~3 s of Prefect imports, ~9 s of Great Expectations') per run.

It shows in the UI as a worker of the pool (heartbeats), marks each run it claims with its
name (the run's infrastructure pid), and on start makes sure of what scale-out relies on:
- the limit on TimescaleDB writers (`tasks/load.py` takes a slot per load), kept in the sink's
  Redis while a worker lives;
- the automation that marks runs Crashed when their heartbeats stop (a worker killed, a host
  lost: Prefect leaves their runs Running otherwise). Flow runs here send heartbeats every
  PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (`sluice worker` sets 30 when unset; serve's runs
  send none); a run silent for `crash_after_s` is Crashed, which triggers `sweep-inbox` to
  start its file again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectNotFound

from deployments.executor import WarmExecutor, keep_writers_limit
from deployments.signals import stop_on_signals
from flows.cleanup import cleanup
from flows.ingest_file import ingest_file
from flows.relay_outbox import relay_outbox
from flows.replay import replay
from flows.sweep_inbox import sweep_inbox

log = logging.getLogger("sluice.worker")
FLOWS: dict[str, Flow[Any, Any]] = {
    f.name: f for f in (ingest_file, sweep_inbox, replay, relay_outbox, cleanup)
}
ZOMBIES = "sluice: crash runs without heartbeats"
HEARTBEAT_S = 30


def zombie_automation(crash_after_s: float) -> AutomationCore:
    """Prefect's documented zombie detection, for Sluice's runs (tag `sluice`): after each
    heartbeat, another heartbeat or a final state within `crash_after_s`, else Crashed."""
    return AutomationCore(
        name=ZOMBIES,
        description="Flow runs of Sluice whose heartbeats stopped (worker killed, host lost).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": "prefect.tag.sluice"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=crash_after_s),
        ),
        actions=[
            ChangeFlowRunState(
                name=None,
                force=False,
                state=StateType.CRASHED,
                message=f"No heartbeat for {crash_after_s:.0f} s: its worker is gone.",
            )
        ],
    )


def ensure_zombie_automation(client: SyncPrefectClient, crash_after_s: float) -> None:
    """Create the automation, or set its window when another worker made it differently."""
    wanted = zombie_automation(crash_after_s)
    found = client.read_automations_by_name(ZOMBIES)
    if not found:
        client.create_automation(wanted)
    elif found[0].trigger != wanted.trigger:
        client.update_automation(found[0].id, wanted)


def ensure_pool(client: SyncPrefectClient, pool: str) -> None:
    """The work pool, created as a process pool when it does not exist yet."""
    try:
        client.read_work_pool(pool)
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def pool_deployments(client: SyncPrefectClient, pool: str) -> dict[UUID, Flow[Any, Any]]:
    """The pool's deployments of Sluice's flows, by deployment id."""
    found = client.read_deployments(
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool]))
    )
    names = {d.flow_id: client.read_flow(d.flow_id).name for d in found}
    return {d.id: FLOWS[names[d.flow_id]] for d in found if names[d.flow_id] in FLOWS}


def work(
    *,
    pool: str = "sluice",
    concurrency: int = 4,
    writers: int = 4,
    poll_s: float = 0.5,
    name: str | None = None,
    crash_after_s: float | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Execute the pool's Sluice runs until `stop` (or SIGTERM/SIGINT)."""
    stop = stop_on_signals(stop or threading.Event())
    name = name or f"sluice-{socket.gethostname()}-{os.getpid()}"
    heartbeat_s = int(os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", HEARTBEAT_S))
    writers_chore = keep_writers_limit(writers)
    with get_client(sync_client=True) as client:
        ensure_pool(client, pool)
        ensure_zombie_automation(client, crash_after_s or 3 * heartbeat_s)

    def chores(client: SyncPrefectClient) -> None:
        executor.flows = pool_deployments(client, pool)
        client.send_worker_heartbeat(pool, name, heartbeat_interval_seconds=10)
        writers_chore(client)

    executor = WarmExecutor(
        {},
        workers=concurrency,
        poll_s=poll_s,
        who=name,
        housekeeping=chores,
        run_heartbeats=True,
    )
    log.info("worker %s: pool %s, %d run(s) at once", name, pool, concurrency)
    try:
        executor.run(stop)
    finally:
        stop.set()
        executor.shutdown()
        log.info("worker %s stopped after %d run(s)", name, executor.finished)
