"""sweep-leftovers: remove the staging and stage locks crashed runs left (sluice.state.janitor)."""

from __future__ import annotations

from prefect import task

from sluice import catalog, ledger
from sluice.settings import get_settings
from sluice.state import checkpoints, janitor
from sluice.translate import translating


@task(name="sweep-leftovers", retries=2, retry_delay_seconds=5)
def sweep_leftovers(max_age_hours: float) -> janitor.Swept:
    settings = get_settings()
    with (
        translating(file=str(settings.staging), stage="cleanup"),
        catalog.connect(settings.dsn()) as conn,
        checkpoints.client(settings.redis_url.get_secret_value()) as r,
    ):
        keys = ledger.keys(conn, settings.schema_name)
        return janitor.sweep(settings.staging, conn, r, keys, max_age_s=max_age_hours * 3600)
