"""The services script's readiness check for the Prefect server, on the states its pidfile
goes through while the server starts (the script sourced: its functions, no service)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sluice.services.local import script_path
from tests.fix_stack import free_port

pytestmark = pytest.mark.unit


def _prefect_ready(home: Path, pidfile: str | None) -> int:
    """prefect_ready's status with the pidfile holding `pidfile` (None: no file), no server
    answering on the port: 1 wait, 2 the server died."""
    (home / "services" / "run").mkdir(parents=True, exist_ok=True)
    script = (
        'source "$1"; if [[ -n ${2+set} ]]; then printf %s "$2" >"$PREFECT_PIDFILE"; fi; '
        'prefect_ready && echo 0 || echo "$?"'
    )
    args = ["bash", "-c", script, "test", str(script_path())]
    if pidfile is not None:
        args.append(pidfile)
    env = {
        "SLUICE_HOME": str(home),
        "SLUICE_PREFECT_PORT": str(free_port()),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def test_a_pidfile_being_written_is_waited_for_not_taken_for_a_dead_server(tmp_path: Path) -> None:
    """The launcher's shell writes its pid; a reader on a loaded machine once found the file
    created and still empty, and the start failed at once as if the server had died."""
    assert _prefect_ready(tmp_path, "") == 1


def test_no_pidfile_yet_and_the_launcher_before_its_exec_are_waited_for(tmp_path: Path) -> None:
    assert _prefect_ready(tmp_path, None) == 1
    with subprocess.Popen(["sleep", "30"]) as launcher:  # alive, not yet named `prefect`
        try:
            assert _prefect_ready(tmp_path, str(launcher.pid)) == 1
        finally:
            launcher.kill()


def test_a_server_that_died_is_reported_at_once(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _prefect_ready(tmp_path, str(gone.pid)) == 2
