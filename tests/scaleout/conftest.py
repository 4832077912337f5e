"""Scale-out fixtures: a production-profile Prefect server and `sluice worker` processes.

The server is `scripts/services.sh up prefect` with SLUICE_PROFILE=production on the private
stack's Redis and PostgreSQL (tests/fix_stack.py): its own database `prefect_scaleout`,
prefect-redis messaging, cache, causal ordering, lease storage and Docket; two API processes
and the background services in a process of their own (SLUICE_PREFECT_API_WORKERS=2). The
deployments come from prefect.yaml (`prefect deploy --all` onto the process pool `sluice`).
Workers are separate processes sharing the inbox and a staging area given as a `file://` URL
(SLUICE_STAGING).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fix_stack import REPO, SLUICE, Stack, free_port, stop, wait_for

PREFECT = str(Path(SLUICE).with_name("prefect"))
CONCURRENCY_LIMIT = 4  # ingest-file's concurrency_limit in prefect.yaml


@dataclass
class Production:
    """The production-profile server, and the environment workers and tests share."""

    stack: Stack
    home: Path
    env: dict[str, str]
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.env["PREFECT_API_URL"]

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.url}/{path.lstrip('/')}"
        response = httpx.post(url, json=body, timeout=60) if body is not None else httpx.get(url)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployment(self, name: str) -> dict[str, Any]:
        return self.api(f"deployments/name/{name}")  # type: ignore[no-any-return]

    def runs(self, deployment: str, **flow_runs: Any) -> list[dict[str, Any]]:
        """The runs of one deployment (`ingest-file/ingest-file`), every page."""
        found: list[dict[str, Any]] = []
        dep = self.deployment(deployment)["id"]
        while True:
            page = self.api(
                "flow_runs/filter",
                {
                    "deployments": {"id": {"any_": [dep]}},
                    "flow_runs": flow_runs,
                    "limit": 200,
                    "offset": len(found),
                },
            )
            found += page
            if len(page) < 200:
                return found

    def start_run(self, deployment: str, **parameters: Any) -> dict[str, Any]:
        dep = self.deployment(deployment)["id"]
        return self.api(f"deployments/{dep}/create_flow_run", {"parameters": parameters})  # type: ignore[no-any-return]

    def worker(self, name: str, *args: str, faults: str = "") -> subprocess.Popen[str]:
        """`sluice worker --name NAME ARGS` in a process (and session) of its own; `faults`:
        its SLUICE_FAULTS (sluice/faults.py)."""
        with (self.home / f"worker-{name}.log").open("w") as log:  # the worker has its own copy
            proc = subprocess.Popen(
                [SLUICE, "worker", "--name", name, "--concurrency", "3", *args],
                env={**self.env, "SLUICE_FAULTS": faults}, cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
        self.workers.append(proc)
        wait_for(
            lambda: "run(s) at once" in self.log(name) or proc.poll() is not None,
            180,
            f"worker {name} to start",
        )
        assert proc.poll() is None, self.log(name)
        return proc

    def log(self, name: str) -> str:
        return (self.home / f"worker-{name}.log").read_text()

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """wait_for, with the end of each worker's log in the failure."""
        try:
            wait_for(condition, timeout, what)
        except AssertionError as exc:
            logs = "\n".join(
                f"--- {p.name} ---\n{p.read_text()[-3000:]}"
                for p in sorted(self.home.glob("worker-*.log"))
            )
            raise AssertionError(f"{exc}\n{logs}") from None

    def inbox(self, dataset: str) -> Path:
        folder = self.home / "inbox" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _prefect(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [PREFECT, *args], env={**env, "PREFECT_CLI_PROMPT": "false"}, cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def production(stack: Stack) -> Iterator[Production]:
    home = Path(tempfile.mkdtemp(prefix="sluice-scaleout-"))
    port = free_port()
    env = {
        **stack.env,
        "SLUICE_HOME": str(home),
        "SLUICE_PROFILE": "production",
        "SLUICE_PREFECT_PORT": str(port),
        "SLUICE_PREFECT_DB": "prefect_scaleout",
        "SLUICE_PREFECT_API_WORKERS": "2",  # two API processes, the services in a third
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # a run the deployment's limit turns away is offered again after 1 s, not 30 s
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        "SLUICE_STAGING": f"file://{home}/shared/staging",
        "SLUICE_METRICS_PORT": "0",
        "SLUICE_SENSOR_QUIET_S": "0",
    }
    server = {**env, "SLUICE_HOME": str(home / "server")}  # its pidfile apart from the stack's
    subprocess.run(
        ["bash", str(REPO / "scripts" / "services.sh"), "up", "prefect"], env=server, check=True
    )
    prod = Production(stack, home, env)
    try:
        _prefect(env, "work-pool", "create", "sluice", "--type", "process", "--overwrite")
        _prefect(env, "--no-prompt", "deploy", "--all")
        # sweep-inbox's cron schedule off: a scheduled sweep a worker picks up as it starts would
        # start runs for files a test put in the inbox before starting its own (two runs per
        # file, both correct, the second finding the file loaded). Its trigger on a Crashed
        # ingest-file run, which the SIGKILL test relies on, still fires for a paused deployment.
        sweep = prod.deployment("sweep-inbox/sweep-inbox")["id"]
        prod.api(f"deployments/{sweep}/pause_deployment", {})
        yield prod
    finally:
        for proc in prod.workers:
            stop(proc)
        subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), "down", "prefect"], env=server
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def workers(production: Production) -> Iterator[Production]:
    """The server, with the workers a test starts stopped after it."""
    yield production
    for proc in production.workers:
        stop(proc)
    production.workers.clear()
