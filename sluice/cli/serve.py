"""`sluice serve` and `sluice worker`: the long-lived processes that execute runs warm."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from sluice.cli.render import out
from sluice.cli.runs import console_logging, quiet_prefect_console, real_server
from sluice.settings import get_settings


def serve(
    concurrency: Annotated[
        int, typer.Option(help="Flow runs at once in this process (ingest-file's limit too).")
    ] = 4,
    writers: Annotated[
        int, typer.Option(help="Global limit on concurrent TimescaleDB loads, all workers.")
    ] = 4,
    sensor: Annotated[bool, typer.Option(help="Watch the inbox and announce arrivals.")] = True,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Serve the deployments and watch the inbox until Ctrl-C. Example: sluice serve"""

    settings = get_settings()
    api = real_server(settings, "serve")
    quiet_prefect_console(verbose)
    console_logging(verbose)
    from deployments.serve import serve as run_serve

    def ready(names: dict[str, Any]) -> None:
        ui = (api or "").removesuffix("/api")
        out.print(f"serving {', '.join(names)} on {api}", highlight=False)
        out.print(f"watching {settings.inbox}; runs: {ui}/runs  (Ctrl-C stops)", highlight=False)

    run_serve(concurrency=concurrency, writers=writers, with_sensor=sensor, on_ready=ready)


def worker(
    pool: Annotated[str, typer.Option(help="The work pool whose runs to execute.")] = "sluice",
    concurrency: Annotated[int, typer.Option(help="Flow runs at once in this process.")] = 4,
    writers: Annotated[
        int, typer.Option(help="Global limit on concurrent TimescaleDB loads, if not set yet.")
    ] = 4,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
    crash_after: Annotated[
        float | None,
        typer.Option(help="Seconds without a heartbeat before a run is Crashed (3 heartbeats)."),
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Execute the work pool's Sluice runs warm in this process until Ctrl-C; run as many as
    the load needs, on any machine. Example: sluice worker --pool sluice --concurrency 4"""

    # Before Prefect is imported: runs send heartbeats, so a dead worker's runs end Crashed.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    real_server(get_settings(), "worker")
    quiet_prefect_console(verbose)
    console_logging(verbose)
    from deployments.worker import work

    work(pool=pool, concurrency=concurrency, writers=writers, name=name, crash_after_s=crash_after)
