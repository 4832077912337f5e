"""The local services (Redis, PostgreSQL + TimescaleDB, a Prefect server): the script that
installs, starts and stops them ships in the package, beside this module, so `sluice services`
works wherever Sluice is installed, not only in a checkout.

The script finds Prefect through SLUICE_PYTHON (the interpreter running this), so the server is
the `prefect` of the environment Sluice runs in; Redis and PostgreSQL are Debian's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.resources import as_file, files
from pathlib import Path

SCRIPT = "services.sh"


def script_env(home: Path) -> dict[str, str]:
    """The script's environment: this one, on `home` (SLUICE_HOME), with this Python's prefect."""
    return {
        **os.environ,
        "SLUICE_HOME": str(home),
        "SLUICE_PYTHON": sys.executable,
        "SLUICE_SERVICES_COMMAND": "sluice services",
    }


def script_path() -> Path:
    """The packaged script as a file (an installed package's files are files)."""
    return Path(str(files(__name__) / SCRIPT))


def run(command: str, names: list[str], *, home: Path) -> int:
    """`services.sh COMMAND NAMES` on `home` (SLUICE_HOME); its exit status."""
    with as_file(files(__name__) / SCRIPT) as script:
        return subprocess.call(["bash", str(script), command, *names], env=script_env(home))
