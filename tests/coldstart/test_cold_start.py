"""`sluice ingest` as a new user runs it: a fresh SLUICE_HOME with nothing running, the embedded
default's settings (Redis, PostgreSQL and the Prefect server at the addresses services.sh gives
them, here on free ports). The first command starts the local services and says so in one line;
the next finds them up. A database named elsewhere never gets a local cluster.

Everything the commands started is stopped at the end by `services.sh down` on the home (the
pids in its pidfiles).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.data import weather_csv
from tests.fix_stack import REPO, SLUICE, free_port

pytestmark = [pytest.mark.services, pytest.mark.coldstart, pytest.mark.timeout(900)]


@dataclass
class Home:
    root: Path
    env: dict[str, str]

    def sluice(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SLUICE, *args], env=self.env, cwd=self.root, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def services(self, *args: str) -> subprocess.CompletedProcess[str]:
        script = REPO / "scripts" / "services.sh"
        return subprocess.run(
            ["bash", str(script), *args], env=self.env, capture_output=True, text=True
        )

    def prefect_pid(self) -> str:
        return (self.root / "home" / "services" / "run" / "prefect.pid").read_text().strip()


def _home(ports: dict[str, int], **env: str) -> Home:
    """A fresh home, the embedded default's settings on `ports`; `env` overrides."""
    root = Path(tempfile.mkdtemp(prefix="sluice-cold-"))
    root.chmod(0o755)  # PostgreSQL runs as its own OS user when the tests run as root
    names = {"redis": "REDIS", "pg": "PG", "prefect": "PREFECT"}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLUICE_", "PREFECT_"))}
    return Home(
        root,
        {
            **base,
            **{f"SLUICE_{names[k]}_PORT": str(port) for k, port in ports.items()},
            "SLUICE_HOME": str(root / "home"),
            "SLUICE_DATABASE_URL": f"postgresql://sluice@127.0.0.1:{ports['pg']}/sluice",
            "SLUICE_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "SLUICE_PREFECT_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
            "SLUICE_METRICS_PORT": "0",
            "PREFECT_HOME": str(root / "prefect-client"),  # no profile names another API
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **env,
        },
    )


@pytest.fixture(scope="module")
def fresh() -> Iterator[Home]:
    """A home where nothing runs yet; whatever its commands start is stopped at the end."""
    home = _home({name: free_port() for name in ("redis", "pg", "prefect")})
    try:
        yield home
    finally:
        down = home.services("down")
        shutil.rmtree(home.root, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr


def test_ingest_starts_the_local_services_and_the_next_command_reuses_them(fresh: Home) -> None:
    assert fresh.services("status", "--quiet").returncode == 3  # nothing runs

    first = fresh.sluice("ingest", str(weather_csv(fresh.root / "a.csv", rows=200)))

    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.split()[:2] == ["loaded", "200"], first.stdout
    said = [line for line in first.stderr.splitlines() if line.startswith("starting ")]
    ui = fresh.env["SLUICE_PREFECT_API_URL"].removesuffix("/api")
    assert len(said) == 1, first.stderr
    assert "Redis, PostgreSQL and Prefect server" in said[0] and f"UI {ui}" in said[0]
    assert fresh.services("status", "--quiet").returncode == 0  # all three run
    server = fresh.prefect_pid()
    runs = httpx.post(
        f"{ui}/api/flow_runs/filter", json={"flow_runs": {"name": {"like_": "/a.csv"}}}
    ).json()
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"]  # the run is on that server

    second = fresh.sluice("ingest", str(weather_csv(fresh.root / "b.csv", rows=300, step_s=601)))

    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.split()[:2] == ["loaded", "300"], second.stdout
    assert "starting " not in second.stderr, second.stderr
    assert fresh.prefect_pid() == server


def test_a_database_named_elsewhere_never_gets_a_local_cluster(fresh: Home) -> None:
    """Redis and Prefect are the first home's, up; the database is at a port nothing listens
    on, which is not the port services.sh gives PostgreSQL: the command fails, starting none."""
    assert fresh.services("up").returncode == 0  # as the test above left them
    ports = {"redis": int(fresh.env["SLUICE_REDIS_PORT"]), "pg": free_port()}
    ports["prefect"] = int(fresh.env["SLUICE_PREFECT_PORT"])
    elsewhere = free_port()
    other = _home(
        ports,
        SLUICE_DATABASE_URL=f"postgresql://sluice@127.0.0.1:{elsewhere}/sluice",
        SLUICE_RETRIES="0",
    )
    try:
        result = other.sluice("ingest", str(weather_csv(other.root / "c.csv", rows=10)))

        assert result.returncode == 1, result.stdout + result.stderr
        assert "starting " not in result.stderr, result.stderr
        assert not (other.root / "home" / "services").exists()  # no cluster, no pidfile
        assert f"port {elsewhere} failed: Connection refused" in result.stderr, result.stderr
    finally:
        shutil.rmtree(other.root, ignore_errors=True)


def test_a_server_that_cannot_start_is_one_line_and_exit_one(fresh: Home) -> None:
    """The Prefect port is taken by something that is not a Prefect server: the command says
    it could not start it, and why, in one line."""
    assert fresh.services("up").returncode == 0  # Redis and PostgreSQL answer
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        redis, pg = (int(fresh.env[f"SLUICE_{name}_PORT"]) for name in ("REDIS", "PG"))
        other = _home({"redis": redis, "pg": pg, "prefect": port})
        try:
            result = other.sluice("ingest", str(weather_csv(other.root / "d.csv", rows=10)))
        finally:
            shutil.rmtree(other.root, ignore_errors=True)

    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: could not start the local Prefect server: "), line
    assert f"port 127.0.0.1:{port} is in use by another process" in line
    assert "`sluice services up` says more" in line
    assert result.stdout == ""  # no file was run
