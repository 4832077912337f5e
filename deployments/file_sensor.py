"""The file sensor: complete files in the inbox become `sluice.file.arrived` Prefect events.

One event per file version (resource `sluice.file.arrival.<hash of path, size, mtime>`), with
the path, dataset and size in its payload; the `ingest-file` deployment's trigger makes a run
of each (`for_each` resource id). Versions already loaded (a seen-mark the flow left in Redis
whose file the ledger confirms) are not announced again when the sensor restarts.

Runs inside `sluice serve`, or alone: `python -m deployments.file_sensor` (SIGTERM/Ctrl-C stop it).
Either way its Prometheus metrics (arrivals, inbox lag, files waiting, sensor pending) are on
`SLUICE_METRICS_PORT`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import redis
from prefect.events import emit_event

from deployments.signals import stop_on_signals
from sluice import catalog, ledger, metrics, status
from sluice.sensor import Arrival, InboxSensor
from sluice.settings import Settings, get_settings
from sluice.state import checkpoints

ARRIVED = "sluice.file.arrived"
RESOURCE_MATCH = "sluice.file.arrival.*"
log = logging.getLogger("sluice.sensor")


def announce(arrival: Arrival) -> None:
    emit_event(
        event=ARRIVED,
        resource={
            "prefect.resource.id": arrival.resource_id,
            "prefect.resource.name": Path(arrival.path).name,
            "sluice.dataset": arrival.dataset,
        },
        payload={
            "path": arrival.path,
            "dataset": arrival.dataset,
            "size": arrival.size,
            "mtime_ns": arrival.mtime_ns,
        },
    )
    metrics.ARRIVALS.labels(arrival.dataset).inc()


def start_metrics(settings: Settings, watcher: InboxSensor | None, stop: threading.Event) -> Any:
    """The Prometheus endpoint (None when the port is 0 or taken) and the inbox gauges, kept
    current every 10 s by a daemon thread until `stop`."""
    if watcher is not None:
        metrics.SENSOR_PENDING.set_function(lambda: watcher.pending)
        threading.Thread(
            target=_inbox_gauges, args=(settings, stop), name="sluice-inbox-gauges", daemon=True
        ).start()
    if not settings.metrics_port:
        return None
    return metrics.start(settings.metrics_port, settings.metrics_addr)


def _inbox_gauges(settings: Settings, stop: threading.Event, every_s: float = 10.0) -> None:
    r = checkpoints.client(settings.redis_url.get_secret_value())
    while not stop.is_set():
        try:
            with catalog.connect(settings.dsn()) as conn:
                keys = ledger.keys_for(settings.dsn(), settings.schema_name)
                waiting, lag = status.inbox_lag(conn, r, keys, settings.inbox)
            metrics.INBOX_WAITING.set(waiting)
            metrics.INBOX_LAG.set(lag)
        except Exception as exc:  # noqa: BLE001 - Redis down: the gauges wait for it
            log.debug("inbox gauges not updated: %s", exc)
        stop.wait(every_s)


def already_loaded(settings: Settings) -> Callable[[Arrival], bool]:
    """True for a version the flow marked loaded and the ledger confirms; Redis or the database
    down: announce it anyway (the run decides)."""
    r = checkpoints.client(settings.redis_url.get_secret_value())

    def skip(arrival: Arrival) -> bool:
        try:
            versions = [(arrival.path, arrival.size, arrival.mtime_ns)]
            keys = ledger.keys_for(settings.dsn(), settings.schema_name)
            if checkpoints.seen_ids(r, keys, versions)[0] is None:
                return False  # the common case, a new file: no database round trip
            with catalog.connect(settings.dsn()) as conn:
                return ledger.handled(conn, r, keys, versions)[0]
        except (redis.exceptions.RedisError, psycopg.Error):
            return False

    return skip


def sensor(
    settings: Settings | None = None,
    on_arrival: Callable[[Arrival], None] = announce,
    **kwargs: Any,
) -> InboxSensor:
    """The inbox sensor; each complete file goes to `on_arrival` (default: a Prefect event)."""
    settings = settings or get_settings()
    return InboxSensor(
        settings.inbox,
        on_arrival,
        quiet_s=settings.sensor_quiet_s,
        skip=already_loaded(settings),
        **kwargs,
    )


def flush_events(timeout_s: float = 10) -> None:
    """Send what Prefect's event client still holds (before the process exits)."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=timeout_s)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = stop_on_signals(threading.Event())
    watcher = sensor()
    server = start_metrics(get_settings(), watcher, stop)
    log.info("watching %s (quiet period %.1f s)", watcher.inbox, watcher.quiet_s)
    watcher.run(stop)
    if server is not None:
        server.shutdown()
    flush_events()
    log.info("stopped: %d announced, %d already loaded", watcher.announced, watcher.skipped)


if __name__ == "__main__":
    main()
