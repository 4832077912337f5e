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


def run(command: str, names: list[str], *, home: Path) -> int:
    """`services.sh COMMAND NAMES` on `home` (SLUICE_HOME); its exit status."""
    env = {
        **os.environ,
        "SLUICE_HOME": str(home),
        "SLUICE_PYTHON": sys.executable,
        "SLUICE_SERVICES_COMMAND": "sluice services",
    }
    with as_file(files(__name__) / SCRIPT) as script:
        return subprocess.call(["bash", str(script), command, *names], env=env)
