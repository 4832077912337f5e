"""CPU seconds of the Prefect server a benchmark runs against, from /proc: the server's process
tree (`prefect server start --port P`, its children) and the PostgreSQL backends of its database
(`postgres: <user> <database> ...`). Sampled before and after a measure, the difference divided
by the runs is the server's CPU per run (a backend that exits between the samples is missed:
the server's pool keeps its connections)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state first); [] when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """The process's own CPU seconds (utime + stime)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK if fields else 0.0


def _table() -> list[tuple[int, int, str, float]]:
    """(pid, ppid, command line, cpu seconds) of every process."""
    rows = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if fields := _stat(entry.name):
            cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
            rows.append((int(entry.name), int(fields[1]), cmd, cpu))
    return rows


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (e.g. `sluice serve`, the worker)."""
    table = _table()
    tree, grew = {pid}, True
    while grew:
        more = {p for p, ppid, _, _ in table if ppid in tree and p not in tree}
        tree |= more
        grew = bool(more)
    return sum(cpu for p, _, _, cpu in table if p in tree)


def postgres_cpu(data_dir: str, exclude_database: str) -> float:
    """CPU seconds of the PostgreSQL cluster in `data_dir` but the backends of one database (the
    Prefect server's, counted as the server's): the live ones, and those already gone (a
    postmaster's reaped children: a client that connects per query leaves no live backend)."""
    table = _table()
    postmasters = {pid for pid, _, cmd, _ in table if cmd.endswith(f"/postgres -D {data_dir}")}
    total = sum(_reaped(pid) for pid in postmasters)
    backend = f" {exclude_database} "
    for pid, ppid, cmd, cpu in table:
        if (pid in postmasters or ppid in postmasters) and backend not in cmd:
            total += cpu
    return total


def _reaped(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / TICK if fields else 0.0  # cutime + cstime


class ServerCpu:
    """`ServerCpu(api_url, database="prefect").seconds()`: the server's CPU so far."""

    def __init__(self, api_url: str, database: str = "prefect") -> None:
        self.port = str(urlparse(api_url).port or 4200)
        self.database = database

    def seconds(self) -> float:
        table = _table()
        listens = f"--port {self.port}"
        roots = {pid for pid, _, cmd, _ in table if "server start" in cmd and listens in cmd}
        tree = set(roots)
        grew = True
        while grew:
            more = {pid for pid, ppid, _, _ in table if ppid in tree and pid not in tree}
            tree |= more
            grew = bool(more)
        total = sum(cpu for pid, _, _, cpu in table if pid in tree)
        backend = f" {self.database} "
        total += sum(
            cpu for _, _, cmd, cpu in table if cmd.startswith("postgres: ") and backend in cmd
        )
        return total
