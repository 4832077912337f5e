"""A `sluice serve` of a benchmark's own: a fresh SLUICE_HOME (its inbox), a free metrics port,
the running local services; and the ledger poll that sees when each dropped file is committed.

It refuses to start beside another `sluice serve` on the same Prefect server (that one could
claim our runs), waits until no run is in flight or due before a measure (a commit is visible
before its load stage is counted, and runs others left queued would run in our measure), and
at its end cancels the ingest-file runs of its inbox that serve had not started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import connect, stage_counts
from bench.cpu import ServerCpu
from sluice.read import fingerprint
from sluice.settings import get_settings
from tests.data import weather_csv

SLUICE = str(Path(sys.executable).with_name("sluice"))


def other_serves(api: str) -> list[int]:
    """Pids of `sluice serve` processes on the same Prefect server (they could take our runs)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            env = dict(
                e.split(b"=", 1) for e in (proc / "environ").read_bytes().split(b"\0") if b"=" in e
            )
        except OSError:
            continue
        if not (len(argv) > 1 and b"serve" in argv and any(a.endswith(b"sluice") for a in argv)):
            continue
        theirs = env.get(b"PREFECT_API_URL") or env.get(b"SLUICE_PREFECT_API_URL") or api.encode()
        if theirs.decode().rstrip("/") == api.rstrip("/"):
            found.append(int(proc.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`sluice serve` on a fresh home, stopped (SIGTERM, by pid) on exit."""

    def __init__(self, dataset: str, concurrency: int, quiet_s: float | None) -> None:
        settings = get_settings()
        self.api = os.environ.get("PREFECT_API_URL", settings.prefect_api_url)
        if pids := other_serves(self.api):
            raise SystemExit(f"another sluice serve on {self.api} (pid {pids}): stop it first")
        os.environ["PREFECT_API_URL"] = self.api  # for this process's client too
        self.home = Path(tempfile.mkdtemp(prefix="sluice-bench-serve-"))
        self.inbox = self.home / "inbox" / dataset  # the dataset is the inbox subfolder
        self.port = free_port()
        self.env = {
            **os.environ, "SLUICE_HOME": str(self.home), "PREFECT_API_URL": self.api,
            "SLUICE_METRICS_PORT": str(self.port), "SLUICE_METRICS_ADDR": "127.0.0.1",
        }  # fmt: skip
        if quiet_s is not None:
            self.env["SLUICE_SENSOR_QUIET_S"] = str(quiet_s)
        self.concurrency = concurrency
        self.log = self.home / "serve.log"
        self.cpu = ServerCpu(self.api)

    def __enter__(self) -> Serve:
        self.inbox.mkdir(parents=True)
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [SLUICE, "serve", "--concurrency", str(self.concurrency)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        while "watching" not in self.log.read_text():
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if left := cancel_runs(str(self.home)):
            print(f"cancelled {left} ingest-file runs of this benchmark serve had not started")
        shutil.rmtree(self.home, ignore_errors=True)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as page:
            return str(page.read().decode())

    def settle(self, timeout_s: float = 300.0) -> dict[str, float]:
        """Stage counts once no run is in flight or due: a commit is visible before its load
        stage is counted, and runs others left queued on the server would run in our round."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            text = self.metrics()
            idle = "sluice_runs_in_flight 0.0" in text
            if idle and due_runs() == 0:
                return stage_counts(text)
            time.sleep(0.5)
        print(f"warning: serve still busy after {timeout_s:.0f} s (runs queued by others?)")
        return stage_counts(self.metrics())

    def prepare(self, count: int, rows: int, prefix: str) -> list[tuple[Path, str]]:
        """New files (unique contents) beside the inbox, with their file ids."""
        folder = self.home / "drop"
        made = []
        for i in range(count):
            path = weather_csv(folder / f"{prefix}{i:04}.csv", rows=rows)
            made.append((path, fingerprint(path)[0]))
        return made

    def drop(self, path: Path) -> Path:
        """Rename the complete file into the inbox (atomic: the sensor never sees it partial)."""
        return path.rename(self.inbox / path.name)


def _waiting(due_only: bool = False) -> tuple[Any, Any]:
    """Filters: ingest-file runs not started yet (scheduled or pending; due ones only)."""
    from prefect.client.schemas import filters as f
    from prefect.client.schemas.objects import StateType

    waiting = f.FlowRunFilter(
        state=f.FlowRunFilterState(
            type=f.FlowRunFilterStateType(any_=[StateType.SCHEDULED, StateType.PENDING])
        ),
        next_scheduled_start_time=f.FlowRunFilterNextScheduledStartTime(before_=datetime.now(UTC))
        if due_only
        else None,
    )
    return waiting, f.DeploymentFilter(name=f.DeploymentFilterName(any_=["ingest-file"]))


def due_runs() -> int:
    """ingest-file runs on the server that are due and not started (ours or left by others)."""
    from prefect.client.orchestration import get_client

    due, deployment = _waiting(due_only=True)
    with get_client(sync_client=True) as client:  # PREFECT_API_URL: set by Serve
        return client.count_flow_runs(flow_run_filter=due, deployment_filter=deployment)


def cancel_runs(home: str) -> int:
    """Cancel the ingest-file runs of files below `home` still waiting on the server (a serve
    stopped with a backlog): the next serve on the server would otherwise take them."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    waiting, deployment = _waiting()
    with get_client(sync_client=True) as client:
        runs, page = [], [None]
        while len(page) and len(runs) % 200 == 0:  # the API's pages hold at most 200 runs
            page = client.read_flow_runs(
                flow_run_filter=waiting, deployment_filter=deployment, limit=200, offset=len(runs)
            )
            runs += page
        ours = [r for r in runs if str(r.parameters.get("path", "")).startswith(home)]
        for run in ours:
            client.set_flow_run_state(run.id, Cancelled(message="benchmark ended"), force=True)
    return len(ours)


class Ledger(threading.Thread):
    """Polls sluice.files for the expected file ids; `seen[id]` = when its row was visible."""

    def __init__(self, every_s: float) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.pending: set[str] = set()
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def expect(self, file_id: str) -> None:
        with self.lock:
            self.pending.add(file_id)

    def run(self) -> None:
        with connect() as conn:
            while not self.stopped.wait(self.every_s):
                with self.lock:
                    ids = list(self.pending)
                if not ids:
                    continue
                rows = conn.execute(
                    "SELECT file_id FROM sluice.files WHERE file_id = ANY(%s)", (ids,)
                ).fetchall()
                now = time.time()
                with self.lock:
                    for (file_id,) in rows:
                        self.seen[file_id] = now
                        self.pending.discard(file_id)

    def stop(self) -> None:
        self.stopped.set()
        self.join()

    def wait(self, timeout_s: float) -> bool:
        """True once nothing is pending; False at the timeout."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.lock:
                if not self.pending:
                    return True
            time.sleep(0.05)
        return False
