"""load: rows + ledger row in one transaction; not cached: the ledger makes it idempotent.

A load holds one of the sink's writer slots (sluice/state/locks.py WriterSlot: a semaphore with
leases in the sink's Redis), which bounds concurrent writers across every process and machine
to the limit `sluice serve` / `sluice worker --writers N` set; with no limit set a load
proceeds unbounded. Redis, not Prefect's global concurrency limits: those cost two API calls
and two events per load on the Prefect server (docs/decisions.md).

A load of at least `SLUICE_PROGRESS_ROWS` rows shows a progress artifact in its run, updated
from the COPY loop at most once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from sluice import catalog
from sluice import load as stage
from sluice.contracts import FileRef, InferredSchema, LoadReport, Staged
from sluice.errors import TransientError
from sluice.settings import get_settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from sluice.state.locks import WriterSlot
from sluice.translate import translating
from tasks.observe import notify
from tasks.policy import stage_task


@stage_task("load")
def load(ref: FileRef, ready: Staged, schema: InferredSchema) -> LoadReport:
    settings = get_settings()
    with (
        writer_slot(ref),
        translating(file=ref.path, stage="load"),
        catalog.connect(settings.dsn()) as conn,
    ):
        return stage.run(
            conn,
            ref,
            ready,
            schema,
            ref.in_force,
            schema_name=settings.schema_name,
            lock_timeout_s=settings.lock_timeout_s,
            batch_rows=settings.batch_rows,
            progress=progress_of(ref, ready.rows),
        )


@contextmanager
def writer_slot(ref: FileRef) -> Iterator[None]:
    """Hold one of the sink's writer slots for the body; TransientError if none frees up
    within SLUICE_FILE_WAIT_S (the file stays where it is for a retry or a later run)."""
    settings = get_settings()
    with translating(file=ref.path, stage="load"):
        r = checkpoints.client(settings.redis_url.get_secret_value())
        slot = WriterSlot(r, Keys(ref.sink), lease_s=settings.file_lease_s)
        waited = slot.acquire(
            wait_s=settings.file_wait_s,
            poll_s=0.05,
            waiting=lambda held: get_run_logger().info("waiting for a writer slot (%s)", held),
        )
        if not waited:
            raise TransientError(
                f"no writer slot came free in {settings.file_wait_s:.0f} s ({slot.holder()})",
                hint="retried; other loads hold the sink's writer slots (`--writers`)",
            )
    try:
        yield
    finally:
        slot.release()


def progress_of(ref: FileRef, total: int | None) -> Callable[..., None]:
    """The COPY's progress, `report(rows, estimate=None)`: to listeners in this process (the
    CLI's bars), and to a progress artifact on a load of SLUICE_PROGRESS_ROWS rows or more.
    `total` None: the rows are not known before the COPY (sluice.onepass), which gives its
    estimate with each report; the artifact stays below 100 % until the last row."""
    threshold = get_settings().progress_rows
    artifact: UUID | None = None
    last = 0.0

    def report(rows: int, estimate: int | None = None) -> None:
        nonlocal artifact, last
        notify(ref.path, "rows", rows)
        expected = total or estimate
        if not expected or expected < threshold:
            return
        if artifact is None:
            artifact = create_progress_artifact(  # type: ignore[assignment]  # sync: a UUID
                0.0, description=f"Loading {expected:,} rows of {ref.path} into {ref.dataset}"
            )
        now = time.monotonic()
        if artifact is not None and (now - last >= 1.0 or rows >= expected):
            last = now
            done = 100.0 if total and rows >= total else 99.0
            update_progress_artifact(artifact, min(done, 100.0 * rows / expected))

    return report
