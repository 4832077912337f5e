"""Benchmark: Prefect's own floor, the bare flow-run rate of the server Sluice runs on.

An async flow with one trivial task, deployed on the same server and executed the way
`sluice serve` executes a file's ingest-file run (its WarmExecutor: created Pending as a free
thread takes it, run in that thread), N runs: runs/s and the server's CPU per run
(bench/cpu.py).
`serve_latency` runs it in the same process and round as Sluice's own throughput and prints
Sluice's files/s as a ratio of it.

    .venv/bin/python -m bench.floor [--runs 200] [--concurrency 4]

Prints numbers; asserts nothing.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from sluice.settings import get_settings

# Prefect reads its API URL when it is imported: the local server's unless the caller said
os.environ.setdefault("PREFECT_API_URL", get_settings().prefect_api_url)

from prefect import flow, task  # noqa: E402

from bench.common import parser_for  # noqa: E402
from bench.cpu import ServerCpu  # noqa: E402


@task(name="trivial", persist_result=False)
def trivial(n: int) -> int:
    return n


@flow(name="bench-floor", persist_result=False)
async def bare(n: int = 0) -> int:
    """The least a run can be: one flow run, one task run."""
    return trivial(n)


def measure(runs: int, concurrency: int) -> dict[str, Any]:
    """runs/s and server CPU seconds per run, after a warm-up run."""
    from deployments.executor import WarmExecutor

    api = os.environ["PREFECT_API_URL"]
    deployment_id = bare.to_deployment("bench-floor").apply()
    executor = WarmExecutor({deployment_id: bare}, workers=concurrency)
    cpu = ServerCpu(api)
    try:
        _batch(executor, deployment_id, 1)  # imports, clients, the flow's registration
        before, started = cpu.seconds(), time.perf_counter()
        _batch(executor, deployment_id, runs)
        wall = time.perf_counter() - started
        spent = cpu.seconds() - before
    finally:
        executor.shutdown()
    return dict(runs=runs, rate=runs / wall, wall_s=wall, server_cpu_per_run=spent / runs)


def _batch(executor: Any, deployment_id: Any, n: int) -> None:
    """n runs, each started as serve's sensor starts an ingest-file run (a thread free, then
    `WarmExecutor.start`); waits for all to end."""
    from prefect.client.orchestration import get_client

    target, stop = executor.finished + n, threading.Event()
    with get_client(sync_client=True) as client:
        for i in range(n):
            executor.wait_for_room(stop)
            executor.start(client, deployment_id, {"n": i}, name=f"floor-{i}", tags=["bench"])
    while executor.finished < target:
        time.sleep(0.05)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    m = measure(args.runs, args.concurrency)
    print(
        f"Prefect's floor: {m['runs']} runs of an async flow with one task, "
        f"{args.concurrency} threads: {m['rate']:.2f} runs/s, "
        f"server CPU {m['server_cpu_per_run'] * 1000:.0f} ms per run"
    )


if __name__ == "__main__":
    main()
