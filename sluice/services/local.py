"""The local services a command needs, started when they are down: which of the services the
settings name are the ones `sluice services` runs, whether they answer, and starting those that
do not in the background (the command imports what it runs meanwhile).

A service is local when the settings name it at the address `services.sh` gives it: loopback,
on the port `SLUICE_REDIS_PORT`, `SLUICE_PG_PORT` or `SLUICE_PREFECT_PORT` (defaults 56379,
55432, 54200) selects. A service anywhere else is never started: a SLUICE_DATABASE_URL that
points at another cluster never gets a local one. The script is run with nothing to install
(`SLUICE_SERVICES_CHECK_ONLY`): installing Debian packages is `sluice services install`'s job,
not a side effect of ingesting a file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from sluice.errors import SluiceError
from sluice.services import script_env, script_path
from sluice.settings import Settings

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PORTS = {"redis": ("SLUICE_REDIS_PORT", 56379), "postgres": ("SLUICE_PG_PORT", 55432)}
PREFECT_PORT = ("SLUICE_PREFECT_PORT", 54200)
NAMES = {"redis": "Redis", "postgres": "PostgreSQL", "prefect": "Prefect server"}


def port_of(variable: str, default: int) -> int:
    """The port services.sh uses for a service (its environment variable, else the default)."""
    value = os.environ.get(variable, "")
    return int(value) if value.isdigit() else default


def _address(url: str) -> tuple[str, int | None]:
    """Host and port of a URL, or of a libpq key=value DSN."""
    if "://" in url:
        parts = urlsplit(url)
        return parts.hostname or "", parts.port
    from psycopg.conninfo import conninfo_to_dict

    found = conninfo_to_dict(url)
    port = str(found.get("port") or "5432")
    return str(found.get("host") or ""), int(port) if port.isdigit() else None


def is_local(name: str, url: str) -> bool:
    """`url` is where services.sh runs `name` ("redis", "postgres", "prefect")."""
    variable, default = PREFECT_PORT if name == "prefect" else PORTS[name]
    host, port = _address(url)
    return host in LOOPBACK and port == port_of(variable, default)


def _sink(settings: Settings) -> dict[str, str]:
    return {
        "redis": settings.redis_url.get_secret_value(),
        "postgres": settings.database_url.get_secret_value(),
    }


def local_sink(settings: Settings) -> list[str]:
    """The services of the sink (Redis, PostgreSQL) the settings name locally."""
    return [name for name, url in _sink(settings).items() if is_local(name, url)]


def listening(url: str, timeout_s: float = 0.5) -> bool:
    """Something accepts TCP connections at the URL's host and port."""
    host, port = _address(url)
    try:
        with socket.create_connection((host or "127.0.0.1", port or 5432), timeout=timeout_s):
            return True
    except OSError:
        return False


def prefect_answers(api_url: str, timeout_s: float = 3.0) -> bool:
    """A Prefect API answers its health check at `api_url` (`http://host:port/api`); a busy
    server gets the seconds services.sh gives it, a port nobody listens on refuses at once."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def down_in_sink(settings: Settings) -> list[str]:
    """The local services of the sink that accept no connection now."""
    urls = _sink(settings)
    return [name for name in local_sink(settings) if not listening(urls[name])]


def describe(names: list[str]) -> str:
    """`Redis, PostgreSQL and Prefect server` for a message."""
    words = [NAMES[n] for n in names]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


@dataclass
class Starting:
    """`services.sh up NAMES` running in the background; `wait()` until they answer."""

    names: list[str]
    home: Path
    procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def wait(self) -> None:
        """Block until every service answers; a SluiceError with the script's last line when
        one does not start."""
        for proc, output in self.procs:
            code = proc.wait()
            output.seek(0)
            said = output.read().decode(errors="replace").strip().splitlines()
            output.close()
            if code:
                last = said[-1] if said else f"exit status {code}"
                raise SluiceError(
                    f"could not start the local {describe(self.names)}: {last}",
                    hint=f"`sluice services up` says more; logs in {self.home}/services/log",
                )
        self.procs.clear()


def start(names: list[str], home: Path) -> Starting:
    """`services.sh up NAMES` on `home`, in the background, checking only (never installing)."""
    starting = Starting(names, home)
    env = {**script_env(home), "SLUICE_SERVICES_CHECK_ONLY": "1"}
    output = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        ["bash", str(script_path()), "up", *names],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    starting.procs.append((proc, output))
    return starting


def also_start(starting: Starting | None, names: list[str], home: Path) -> Starting:
    """`starting` with `names` started too, or a new Starting. The second script run names the
    first run's services again: whichever run takes the home's lock first starts them, the
    other finds them up, so the Prefect server finds PostgreSQL up and keeps its database there.
    """
    if starting is None:
        return start(names, home)
    more = start([*starting.names, *names], home)
    starting.names += names
    starting.procs += more.procs
    return starting
