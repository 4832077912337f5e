"""sweep-inbox: the safety net. Every file waiting in the inbox that is not loaded and not being
worked on gets an `ingest-file` run; then what crashed runs left behind is cleaned.

It catches what events missed: files dropped while the sensor was down, a lost event, a run
that failed transiently. Scheduled (every few minutes) in prefect.yaml and `sluice serve`.

Which files need a run is sluice.sweep's selection (tasks/sweep.py adds the runs Prefect already
has queued); each gets a run of the `ingest-file` deployment when there is one (workers pick it
up), else a subflow here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

from flows.ingest_file import ingest_file
from sluice.settings import get_settings
from tasks.cleanup import sweep_leftovers
from tasks.sweep import find_waiting

INGEST_DEPLOYMENT = "ingest-file/ingest-file"


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
