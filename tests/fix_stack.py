"""A private stack: Redis, PostgreSQL+TimescaleDB and a Prefect server of this test session's own.

Tests that kill processes, restart services, or need a real `prefect server start` (events,
triggers, deployments) use it, so they never touch the services a developer (or the rest of the
suite) uses: `scripts/services.sh` starts a second set on free loopback ports under a temporary
SLUICE_HOME, and stops exactly those processes at the end. Sluice runs in subprocesses
(`sluice ingest`, `sluice serve`) with the stack's environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

REPO = Path(__file__).resolve().parents[1]
SLUICE = str(Path(sys.executable).with_name("sluice"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    home: Path
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)

    def services(self, *args: str) -> None:
        """`scripts/services.sh ARGS` on this stack's home and ports, as a person's shell runs
        it: without PREFECT_API_URL (the server must not need a client setting to be whole)."""
        subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), *args],
            env={k: v for k, v in self.env.items() if k != "PREFECT_API_URL"},
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def ingest(self, *paths: Path, faults: str = "", timeout: float = 300, **env: str) -> Run:
        """`sluice ingest PATHS` with SLUICE_FAULTS=faults and any other `env`; its result."""
        proc = self.start(*paths, faults=faults, **env)
        out, err = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out, err)

    def start(self, *paths: Path, faults: str = "", **env: str) -> subprocess.Popen[str]:
        env = {**self.env, **env, "SLUICE_FAULTS": faults}
        return subprocess.Popen(
            [SLUICE, "ingest", *map(str, paths)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.env["SLUICE_DATABASE_URL"], autocommit=True)

    def keys(self) -> Any:
        """The Redis keys of this stack's sink (`checkpoints.Keys`)."""
        from sluice import ledger

        with self.connect() as conn:
            return ledger.keys(conn, self.env.get("SLUICE_SCHEMA", "public"))

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["SLUICE_REDIS_URL"], socket_connect_timeout=2)

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST (with a body) or GET the stack's Prefect API; the decoded JSON."""
        import httpx

        url = f"{self.env['PREFECT_API_URL']}/{path.lstrip('/')}"
        response = httpx.post(url, json=body) if body is not None else httpx.get(url)
        response.raise_for_status()
        return response.json()

    def flow_runs(self, name_like: str) -> list[dict[str, Any]]:
        """Flow runs whose name contains `name_like`."""
        runs: list[dict[str, Any]] = []
        while True:
            page = self.api(
                "flow_runs/filter",
                {"flow_runs": {"name": {"like_": name_like}}, "limit": 200, "offset": len(runs)},
            )
            runs += page
            if len(page) < 200:
                return runs

    def inbox(self, dataset: str) -> Path:
        folder = self.home / "inbox" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def outcomes(self) -> list[str]:
        """The outcome word of each file line `sluice ingest` printed."""
        return [line.split()[0] for line in self.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    home = Path(tempfile.mkdtemp(prefix="sluice-reliability-"))
    home.chmod(0o755)  # PostgreSQL runs as its own OS user when the tests run as root
    ports = {"redis": free_port(), "pg": free_port(), "prefect": free_port()}
    env = {
        **os.environ,
        "SLUICE_HOME": str(home),
        "SLUICE_REDIS_PORT": str(ports["redis"]),
        "SLUICE_PG_PORT": str(ports["pg"]),
        "SLUICE_PREFECT_PORT": str(ports["prefect"]),
        "SLUICE_DATABASE_URL": f"postgresql://sluice@127.0.0.1:{ports['pg']}/sluice",
        "SLUICE_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "SLUICE_DATASETS": str(home / "datasets.yaml"),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
        "SLUICE_FILE_LEASE_S": "2",  # a killed run's file is free again 2 s after its death
        "SLUICE_RETRIES": "5",
        "SLUICE_RETRY_BACKOFF_S": "0.5",  # 0.5, 1, 2, 4, 8 s: outlasts a service restart
        "SLUICE_LOCK_TIMEOUT_S": "5",
        # a service a test stopped stays down: `sluice ingest` must not start it again
        "SLUICE_START_SERVICES": "false",
        # The stack's Prefect server keeps its database in the stack's PostgreSQL: while a test
        # restarts PostgreSQL, the API answers 500, which Prefect's client retries only if told
        "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500",
    }
    env.pop("SLUICE_FAULTS", None)
    s = Stack(home, ports, env)
    try:
        s.services("up", "redis", "postgres", "prefect")
    except subprocess.CalledProcessError:
        s.services("down")
        if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip("could not start the private services (see scripts/services.sh install)")
    try:
        yield s
    finally:
        s.services("down")
        shutil.rmtree(home, ignore_errors=True)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[Any], timeout_s: float = 60) -> None:
    """Stop a process this test started: SIGTERM, then SIGKILL if it outlives `timeout_s`."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
