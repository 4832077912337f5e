"""relay-outbox: deliver the events the sink committed (`sluice.outbox`) to Redis and Prefect.

Run it on a schedule or after loads; running it often, or several at once, is safe: each event
reaches the stream `sluice:events` once and Prefect's event feed once.
"""

from __future__ import annotations

from prefect import flow

from tasks.relay import relay_events


@flow(name="relay-outbox", persist_result=False)
def relay_outbox(limit: int = 500) -> int:
    """Relay every undelivered outbox event; returns how many were delivered."""
    return relay_events(limit)
