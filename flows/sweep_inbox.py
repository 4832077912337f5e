"""sweep-inbox: the safety net. Every file waiting in the inbox that is not loaded and not being
worked on gets an `ingest-file` run; then what crashed runs left behind is cleaned.

It catches what events missed: files dropped while the sensor was down, a lost event, a run
that failed transiently. Scheduled (every few minutes) in prefect.yaml and `sluice serve`.

For each file that is complete (unchanged for the sensor's quiet period): a file with an
ingest-file run scheduled, pending or running (a backlog behind the sensor's events), or one
the sensor of this process holds back until a run thread is free (`sluice serve`), is left to
that run; a version already marked loaded in Redis is skipped without reading it; otherwise
its content hash decides: in the ledger, it is marked and skipped; locked by a live run,
skipped; else a run is started. A seen-mark only spares the hashing: the ledger confirms the
file id it names, and a mark the ledger does not confirm is stale (the file is run):
a run of the `ingest-file` deployment when there is one (workers pick it up), else a subflow
here.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows.cleanup import sweep_leftovers
from flows.ingest_file import ingest_file
from sluice import catalog, ledger
from sluice.read import fingerprint
from sluice.sensor import held, waiting_files
from sluice.settings import get_settings
from sluice.state import checkpoints

INGEST_DEPLOYMENT = "ingest-file/ingest-file"


@dataclass
class Found:
    waiting: list[str] = field(default_factory=list)  # to run
    loaded: int = 0
    in_progress: int = 0
    queued: int = 0
    still_written: int = 0


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
def find_waiting(quiet_s: float) -> Found:
    settings = get_settings()
    found = Found()
    r = checkpoints.client(settings.redis_url.get_secret_value())
    now = time.time()
    candidates: list[tuple[Path, int, int]] = []
    for path in waiting_files(settings.inbox):
        try:
            st = path.stat()
        except OSError:
            continue
        if now - st.st_mtime < quiet_s:
            found.still_written += 1
        elif held(str(path)):  # serve's sensor has it: its run is not created yet
            found.queued += 1
        else:
            candidates.append((path, st.st_size, st.st_mtime_ns))
    # Asked after the sensor's holds: a file it let go had its run created before, so the run
    # is live here or done (in the ledger or locked below), never a second run's to start.
    queued = queued_paths()
    versions = [c for c in candidates if str(c[0]) not in queued]
    found.queued += len(candidates) - len(versions)
    with catalog.connect(settings.dsn()) as conn:
        keys = ledger.keys(conn, settings.schema_name)
        seen = ledger.handled(conn, r, keys, [(str(p), s, m) for p, s, m in versions])
        for (path, _, _), known in zip(versions, seen, strict=True):
            if known:
                found.loaded += 1
                continue
            file_id, _ = fingerprint(path)
            if catalog.is_loaded(conn, file_id):
                checkpoints.remember_handled(
                    r, keys, str(path), file_id, ttl_s=settings.result_ttl_s
                )
                found.loaded += 1
            elif r.exists(keys.lock(file_id)):
                found.in_progress += 1
            else:
                found.waiting.append(str(path))
    return found


def _start(path: str) -> str:
    """A deployment run for the file (workers or `sluice serve` run it), else a subflow here."""
    try:
        run: Any = run_deployment(
            INGEST_DEPLOYMENT, parameters={"path": path}, timeout=0, as_subflow=False
        )
        return f"run {run.name}"
    except ObjectNotFound:
        state = ingest_file(path=path, return_state=True)
        return f"ran here: {state.name}"


@flow(name="sweep-inbox", persist_result=False)
def sweep_inbox(quiet_s: float | None = None, clean: bool = True) -> dict[str, object]:
    """Start a run for each waiting file that is neither loaded nor in progress; clean up."""
    settings = get_settings()
    logger = get_run_logger()
    found = find_waiting(settings.sensor_quiet_s if quiet_s is None else quiet_s)
    for path in found.waiting:
        logger.info("%s: %s", path, _start(path))
    logger.info(
        "%d waiting file(s) started; %d loaded, %d in progress, %d with a run queued, "
        "%d still being written",
        len(found.waiting),
        found.loaded,
        found.in_progress,
        found.queued,
        found.still_written,
    )
    summary: dict[str, object] = asdict(found)
    if clean:
        summary["cleanup"] = asdict(sweep_leftovers(settings.result_ttl_s / 3600))
    return summary
