"""load: rows + ledger row in one transaction; not cached: the ledger makes it idempotent.

A load holds a slot of the global concurrency limit `sluice-timescaledb-writers` (created by
`sluice serve`, or `prefect gcl create sluice-timescaledb-writers --limit N`), which bounds
concurrent writers across all workers; without the limit a load proceeds unbounded.
"""

from __future__ import annotations

from prefect.concurrency.sync import concurrency

from sluice import load as stage
from sluice.contracts import FileRef, InferredSchema, LoadReport, Staged
from sluice.datasets import load_rules
from sluice.errors import translating
from sluice.settings import get_settings
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
            load_rules(settings.datasets, ref.dataset),
            schema_name=settings.schema_name,
            lock_timeout_s=settings.lock_timeout_s,
            batch_rows=settings.batch_rows,
        )
