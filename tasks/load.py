"""load: rows + ledger row in one transaction; not cached: the ledger makes it idempotent.

A load holds a slot of the global concurrency limit `sluice-timescaledb-writers` (created by
`sluice serve`, or `prefect gcl create sluice-timescaledb-writers --limit N`), which bounds
concurrent writers across all workers; without the limit a load proceeds unbounded.

A load of at least `SLUICE_PROGRESS_ROWS` rows shows a progress artifact in its run, updated
from the COPY loop at most once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.concurrency.sync import concurrency

from sluice import load as stage
from sluice.contracts import FileRef, InferredSchema, LoadReport, Staged
from sluice.errors import translating
from sluice.settings import get_settings
from tasks.observe import notify
from tasks.policy import stage_task

WRITERS_LIMIT = "sluice-timescaledb-writers"


@stage_task("load")
def load(ref: FileRef, ready: Staged, schema: InferredSchema) -> LoadReport:
    settings = get_settings()
    with (
        concurrency(WRITERS_LIMIT, occupy=1, strict=False),
        translating(file=ref.path, stage="load"),
        stage.connect(settings.dsn()) as conn,
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
            progress=_progress(ref, ready.rows, settings.progress_rows),
        )


def _progress(ref: FileRef, total: int, threshold: int) -> Callable[[int], None]:
    """The COPY's progress: to listeners in this process, and to an artifact on long loads."""
    artifact: UUID | None = None
    if total and total >= threshold:
        artifact = create_progress_artifact(  # type: ignore[assignment]  # sync: a UUID
            0.0, description=f"Loading {total:,} rows of {ref.path} into {ref.dataset}"
        )
    last = 0.0

    def report(rows: int) -> None:
        nonlocal last
        notify(ref.path, "rows", rows)
        now = time.monotonic()
        if artifact is not None and (now - last >= 1.0 or rows >= total):
            last = now
            update_progress_artifact(artifact, min(100.0, 100.0 * rows / total))

    return report
