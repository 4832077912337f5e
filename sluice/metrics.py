"""Prometheus metrics of this process, and the HTTP endpoint that serves them.

The stage tasks and the flow update them where they run: in `sluice serve` every run executes
in the serving process, so one endpoint shows them all; the sensor sets the inbox gauges. The
names are what grafana/sluice-dashboard.json queries; change both together.

    sluice_files_total{dataset,outcome}       files ended loaded | duplicate | quarantined | failed
    sluice_rows_total{dataset}                rows committed
    sluice_bytes_total{dataset}               bytes of the files that ended (any outcome)
    sluice_stage_seconds{stage}               histogram: one stage of one file
    sluice_end_to_end_seconds{dataset}        histogram: file arrival (mtime) to commit
    sluice_retries_total{stage}               a stage's attempts after its first
    sluice_runs_in_flight                     ingest-file runs executing in this process
    sluice_arrivals_total{dataset}            files the sensor announced
    sluice_inbox_lag_seconds                  age of the oldest file waiting in the inbox
    sluice_inbox_waiting                      files in the inbox not loaded yet
    sluice_sensor_pending                     files the sensor waits on to settle, or to announce
    sluice_dead_letters                       dead letters in Redis (`sluice:dead`)
    sluice_outbox_pending                     outbox events not yet relayed
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import start_http_server as _start

log = logging.getLogger(__name__)

_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400)

FILES = Counter("sluice_files", "Files whose run ended, by outcome.", ["dataset", "outcome"])
ROWS = Counter("sluice_rows", "Rows committed to hypertables.", ["dataset"])
BYTES = Counter("sluice_bytes", "Bytes of files whose run ended.", ["dataset"])
STAGE_SECONDS = Histogram(
    "sluice_stage_seconds", "Seconds one stage took for one file.", ["stage"],
    buckets=_STAGE_BUCKETS,
)  # fmt: skip
END_TO_END = Histogram(
    "sluice_end_to_end_seconds", "Seconds from a file's arrival (mtime) to its commit.",
    ["dataset"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
RETRIES = Counter("sluice_retries", "Attempts of a stage after its first.", ["stage"])
IN_FLIGHT = Gauge("sluice_runs_in_flight", "ingest-file runs executing in this process.")
ARRIVALS = Counter("sluice_arrivals", "Files the sensor announced.", ["dataset"])
INBOX_LAG = Gauge("sluice_inbox_lag_seconds", "Age of the oldest file waiting in the inbox.")
INBOX_WAITING = Gauge("sluice_inbox_waiting", "Files waiting in the inbox.")
SENSOR_PENDING = Gauge("sluice_sensor_pending", "Files the sensor waits on or will announce.")
DEAD_LETTERS = Gauge("sluice_dead_letters", "Dead letters in Redis.")
OUTBOX_PENDING = Gauge("sluice_outbox_pending", "Outbox events not yet relayed.")


def file_ended(dataset: str, outcome: str, *, rows: int, size: int) -> None:
    """Count one file's end (rows only count when committed)."""
    FILES.labels(dataset, outcome).inc()
    BYTES.labels(dataset).inc(size)
    if outcome == "loaded":
        ROWS.labels(dataset).inc(rows)


def stage_done(stage: str, seconds: float, attempt: int) -> None:
    STAGE_SECONDS.labels(stage).observe(seconds)
    if attempt > 1:
        RETRIES.labels(stage).inc()


def start(
    port: int, addr: str = "0.0.0.0", *, registry: CollectorRegistry = REGISTRY
) -> WSGIServer | None:
    """Serve /metrics on `port` in a daemon thread; None when it cannot (the port is taken:
    metrics are worth a warning, not the ingestion). Stop it with `server.shutdown()`."""
    try:
        server, _thread = _start(port, addr, registry=registry)
    except OSError as exc:
        log.warning("no Prometheus endpoint on %s:%d: %s", addr, port, exc)
        return None
    log.info("Prometheus metrics on http://%s:%d/metrics", addr, server.server_port)
    return server
