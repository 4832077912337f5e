"""Sluice installed as a user installs it: a wheel of this checkout in a fresh virtualenv outside
the checkout, run from a folder that is not the checkout, with a SLUICE_HOME and services of its
own on free ports. `sluice services up`, `sluice ingest` and `sluice serve` must work there:
nothing they run or read may be a path of the checkout (its scripts/, .venv/ or .sluice/).

The wheel's dependencies come from a wheelhouse under ~/.cache/sluice (SLUICE_CACHE), filled
once from the package index with the versions this checkout's environment runs (its `pip
freeze` as constraints); later runs install offline. Everything started here is stopped by pid.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sluice.read import fingerprint
from tests.data import weather_csv
from tests.fix_stack import free_port, stop

pytestmark = [pytest.mark.services, pytest.mark.wheel, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SLUICE_CACHE") or Path.home() / ".cache" / "sluice")
PIP = ("-m", "pip", "--disable-pip-version-check", "-q")


def _run(*cmd: str | Path, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(map(str, cmd)), cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _build_wheel(work: Path) -> Path:
    """A wheel of the checkout's packages, built from a copy (the checkout stays untouched)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in {p for pattern in patterns for p in REPO.glob(pattern) if p.is_dir()}:
        shutil.copytree(folder, src / folder.name, ignore=junk)
    _run(sys.executable, *PIP, "wheel", "--no-deps", "-w", work / "dist", src)
    [wheel] = (work / "dist").glob("sluice-*.whl")
    return wheel


def _install(python: Path, wheel: Path, work: Path) -> None:
    """The wheel and its dependencies into `python`'s environment, from the wheelhouse."""
    house = CACHE / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    offline = (python, *PIP, "install", "--no-index", "--find-links", house, wheel)
    with (CACHE / "wheelhouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(list(map(str, offline)), capture_output=True).returncode == 0:
            return
        pins = work / "constraints.txt"
        pins.write_text(_run(sys.executable, "-m", "pip", "freeze", "--exclude-editable").stdout)
        _run(sys.executable, *PIP, "wheel", "-c", pins, "--find-links", house, "-w", house, wheel)
        for stale in house.glob("sluice-*.whl"):  # the checkout's wheel is built each run
            stale.unlink()
    _run(*offline)


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The bin/ folder of a fresh virtualenv (outside the checkout) with the wheel installed."""
    work = Path(tempfile.mkdtemp(prefix="sluice-wheel-"))
    try:
        wheel = _build_wheel(work)
        _run(sys.executable, "-m", "venv", work / "venv")
        _install(work / "venv" / "bin" / "python", wheel, work)
        yield work / "venv" / "bin"
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Installed:
    """`sluice` of the installed environment, run in a folder of its own with its own home."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin, self.cwd, self.home = bin_dir, root / "work", root / "home"
        self.cwd.mkdir()
        ports = {name: free_port() for name in ("REDIS", "PG", "PREFECT")}
        self.dsn = f"postgresql://sluice@127.0.0.1:{ports['PG']}/sluice"
        self.env = {  # nothing of the test session's environment: no checkout .venv on PATH
            "HOME": os.environ.get("HOME", str(root)),
            "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "SLUICE_HOME": str(self.home),
            **{f"SLUICE_{name}_PORT": str(port) for name, port in ports.items()},
            "SLUICE_DATABASE_URL": self.dsn,
            "SLUICE_REDIS_URL": f"redis://127.0.0.1:{ports['REDIS']}/0",
            "SLUICE_PREFECT_API_URL": f"http://127.0.0.1:{ports['PREFECT']}/api",
            "SLUICE_METRICS_PORT": "0",
            "SLUICE_SENSOR_QUIET_S": "0.5",
            "PREFECT_HOME": str(root / "prefect-client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def sluice(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "sluice"), *args], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def loaded(self, file_id: str) -> bool:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = 'sluice' AND tablename = 'files'"
            ).fetchone()
            query = "SELECT 1 FROM sluice.files WHERE file_id = %s"
            return bool(found and conn.execute(query, (file_id,)).fetchone())


@pytest.fixture(scope="module")
def user(installed: Path) -> Iterator[Installed]:
    """The installed sluice with its services up (`sluice services up`); down at the end."""
    root = Path(tempfile.mkdtemp(prefix="sluice-user-"))
    root.chmod(0o755)  # PostgreSQL runs as its own OS user when the tests run as root
    who = Installed(installed, root)
    try:
        up = who.sluice("services", "up", timeout=600)
        if up.returncode and os.environ.get("SLUICE_REQUIRE_SERVICES") != "1":
            pytest.skip(f"`sluice services up` failed (see services.sh install):\n{up.stderr}")
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        yield who
    finally:
        down = who.sluice("services", "down", timeout=300)
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"


def test_the_wheel_holds_sluice_and_its_services_script(installed: Path) -> None:
    code = "import sluice, sluice.services as s, importlib.resources as r; "
    code += "print(sluice.__file__); print(r.files(s) / s.SCRIPT)"
    where = _run(installed / "python", "-c", code, cwd=tempfile.gettempdir()).stdout.split()
    assert all(Path(p).is_relative_to(installed.parent) for p in where), where
    assert Path(where[1]).is_file()


def test_an_installed_sluice_ingests_and_serves_outside_the_checkout(user: Installed) -> None:
    status = user.sluice("services", "status")
    assert status.returncode == 0 and "UI http://127.0.0.1:" in status.stdout, status.stdout

    ingested = user.sluice("ingest", str(weather_csv(user.cwd / "readings.csv", rows=200)))
    assert ingested.returncode == 0, ingested.stderr
    assert ingested.stdout.split()[0] == "loaded", ingested.stdout

    # The dataset's folder exists before serve starts: the sensor misses a file moved into a
    # folder created a moment before (the sweep finds it within 5 minutes; see sluice/sensor.py)
    inbox = user.home / "inbox" / "dropped"
    inbox.mkdir(parents=True, exist_ok=True)
    log = (user.cwd / "serve.log").open("w")
    serve = subprocess.Popen(
        [str(user.bin / "sluice"), "serve"], cwd=user.cwd, env=user.env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        said = "already waiting in"  # the sensor has scanned the inbox; it watches next
        _wait(lambda: said in (user.cwd / "serve.log").read_text(), serve, 180, "the sensor")
        time.sleep(1)
        spool = weather_csv(user.cwd / "dropped.csv", rows=200)
        file_id, _ = fingerprint(spool)
        spool.rename(inbox / spool.name)  # complete when it appears, as an upload tool does
        _wait(lambda: user.loaded(file_id), serve, 240, "the dropped file's ledger row")
    except AssertionError as exc:
        lines = (user.cwd / "serve.log").read_text().splitlines()
        said = [line for line in lines if "relay" not in line]  # not the every-minute runs
        raise AssertionError(f"{exc}\n--- sluice serve log ---\n" + "\n".join(said[-80:])) from None
    finally:
        stop(serve)  # SIGTERM: it finishes its runs and stops
        log.close()


def _wait(
    ready: Callable[[], object], proc: subprocess.Popen[bytes], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"sluice serve exited ({proc.returncode}) waiting for {what}"
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.25)


def test_an_installed_sluice_runs_its_demo(user: Installed) -> None:
    demo = user.sluice("demo", "--rows", "500")
    assert demo.returncode == 0, f"{demo.stdout}\n{demo.stderr}"
    assert "What landed" in demo.stdout, demo.stdout
    [rules] = [
        line.split(": ", 1)[1] for line in demo.stdout.splitlines() if line.startswith("rules:")
    ]
    assert Path(rules).is_relative_to(user.bin.parent), rules  # the package's, not the checkout's
