"""Fault injection on the private stack (tests/fix_stack.py): the invariant and the fault matrix.

The faults kill processes and restart services of the stack only. Sluice runs as `sluice
ingest` subprocesses, the way a worker runs it, so SIGKILL is real.

Each test appends its figures (files, faults, runs, rows lost, rows doubled) to the fault
matrix printed at the end of the session.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from sluice.read import fingerprint
from tests.fix_services import doubled_rows
from tests.fix_stack import Stack

_MATRIX: list[dict[str, Any]] = []


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
        fields[b"file_id"].decode(): fields for _, fields in stack.redis().xrange(stack.keys().dead)
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
            doubled = doubled_rows(conn, dataset)
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
