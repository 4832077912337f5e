"""relay: outbox events to the sink's Redis stream (`Keys.events`) and to Prefect events, once.

Each event is emitted to Prefect with the outbox's `event_id` as the event id, so an event sent
again after a failed relay is one event in Prefect (its server keeps the first of an id).
Not cached: the outbox's delivered marks make the task idempotent.
"""

from __future__ import annotations

from pathlib import PurePath

from prefect.events import emit_event

from sluice import catalog, ledger
from sluice.load import outbox
from sluice.settings import get_settings
from sluice.state import checkpoints
from sluice.translate import translating
from tasks.observe import stage_logger
from tasks.policy import stage_task

MAX_BATCHES = 100  # a run relays at most MAX_BATCHES * limit events; the next run goes on


def emit(event: outbox.OutboxEvent) -> None:
    """The event as a Prefect event about its file: `sluice.file.<file_id>`."""
    path = str(event.payload.get("path") or "")
    emit_event(
        event=event.event,
        resource={
            "prefect.resource.id": f"sluice.file.{event.file_id}",
            "prefect.resource.name": PurePath(path).name or event.file_id,
            "sluice.dataset": event.dataset,
        },
        occurred=event.created_at,
        payload=dict(event.payload),
        id=event.event_id,
    )


@stage_task("relay")
def relay_events(limit: int = 500) -> int:
    """Relay undelivered outbox events in batches of `limit`; returns how many were delivered."""
    settings = get_settings()
    total = 0
    with (
        translating(file="sluice.outbox", stage=outbox.STAGE),
        checkpoints.client(settings.redis_url.get_secret_value()) as r,
        catalog.connect(settings.dsn()) as conn,
    ):
        keys = ledger.keys_for(settings.dsn(), settings.schema_name)
        for _ in range(MAX_BATCHES):
            count = outbox.relay(conn, r, keys, limit=limit, publish=emit)
            total += count
            if count < limit:
                break
    stage_logger("relay").info("relayed %d outbox events to %s", total, keys.events)
    return total
