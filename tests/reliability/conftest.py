"""A private stack for fault injection: Redis, PostgreSQL+TimescaleDB and a Prefect server.

The faults kill processes and restart services, so these tests never touch the services a
developer (or the rest of the suite) uses: `scripts/services.sh` starts a second set on free
loopback ports under a temporary SLUICE_HOME, and stops exactly those processes at the end.
Sluice runs as `sluice ingest` subprocesses, the way a worker runs it, so SIGKILL is real.

Each test appends its figures (files, faults, runs, rows lost, rows doubled) to the fault
matrix printed at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
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
from psycopg import sql

from sluice.checkpoints import DEAD_LETTERS
from sluice.read import fingerprint

REPO = Path(__file__).resolve().parents[2]
SLUICE = str(Path(sys.executable).with_name("sluice"))
_MATRIX: list[dict[str, Any]] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    home: Path
    ports: dict[str, int]
    env: dict[str, str] = field(default_factory=dict)

    def services(self, *args: str) -> None:
        """`scripts/services.sh ARGS` on this stack's home and ports."""
        subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), *args],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def ingest(self, *paths: Path, faults: str = "", timeout: float = 300) -> Run:
        proc = self.start(*paths, faults=faults)
        out, err = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out, err)

    def start(self, *paths: Path, faults: str = "") -> subprocess.Popen[str]:
        env = {**self.env, "SLUICE_FAULTS": faults}
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

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["SLUICE_REDIS_URL"], socket_connect_timeout=2)

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
    ports = {"redis": _free_port(), "pg": _free_port(), "prefect": _free_port()}
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


@dataclass(frozen=True)
class Figures:
    files: int
    loaded: int
    quarantined: int
    rows_expected: int
    rows_landed: int
    rows_doubled: int

    @property
    def rows_lost(self) -> int:
        return self.rows_expected - (self.rows_landed - self.rows_doubled)


def exactly_once(
    stack: Stack, dataset: str, files: dict[Path, int], *, fault: str, runs: int
) -> Figures:
    """The invariant after any fault: each file is loaded exactly once (its rows, no row twice)
    or kept in quarantine with a dead letter; records the figures in the fault matrix.

    `files` maps each file (as first placed in the inbox) to the rows it holds, 0 for a file
    that must be quarantined.
    """
    ids = {path: fingerprint(path)[0] if path.exists() else "" for path in files}
    letters = {
        fields[b"file_id"].decode(): fields for _, fields in stack.redis().xrange(DEAD_LETTERS)
    }
    with stack.connect() as conn:
        ledger = dict(
            conn.execute(
                "SELECT file_id, rows FROM sluice.files WHERE dataset = %s", (dataset,)
            ).fetchall()
        )
        table = sql.Identifier("public", dataset)
        landed = doubled = 0
        if ledger:
            landed = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
            doubled = conn.execute(
                sql.SQL(
                    "SELECT coalesce(sum(n - 1), 0) FROM "
                    "(SELECT count(*) AS n FROM {} GROUP BY _file_id, _row HAVING count(*) > 1) d"
                ).format(table)
            ).fetchone()[0]
    loaded = quarantined = 0
    for path, rows in files.items():
        file_id = ids[path]
        if rows:
            assert ledger.get(file_id) == rows, f"{path.name}: ledger {ledger.get(file_id)}"
            loaded += 1
        else:
            kept = list((stack.home / "quarantine" / dataset).glob(f"*-{path.name}"))
            assert kept, f"{path.name} is neither loaded nor in quarantine"
            letter = next((v for v in letters.values() if v[b"path"].decode() == str(path)), None)
            assert letter is not None, f"{path.name} has no dead letter"
            assert letter[b"message"], f"{path.name}'s dead letter gives no reason"
            quarantined += 1
    expected = sum(files.values())
    figures = Figures(len(files), loaded, quarantined, expected, int(landed), int(doubled))
    assert figures.rows_doubled == 0
    assert figures.rows_landed == expected == sum(ledger.values())
    _MATRIX.append({"fault": fault, "runs": runs, **figures.__dict__, "lost": figures.rows_lost})
    return figures


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MATRIX:
        return
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(
        f"{'fault':<48} {'files':>5} {'runs':>4} {'loaded':>6} {'quar.':>5} "
        f"{'rows':>7} {'lost':>4} {'doubled':>7}"
    )
    for row in _MATRIX:
        terminalreporter.write_line(
            f"{row['fault']:<48} {row['files']:>5} {row['runs']:>4} {row['loaded']:>6} "
            f"{row['quarantined']:>5} {row['rows_landed']:>7} {row['lost']:>4} "
            f"{row['rows_doubled']:>7}"
        )
    out = os.environ.get("SLUICE_FAULT_MATRIX")
    if out:
        Path(out).write_text(json.dumps(_MATRIX, indent=1))
