"""sweep-inbox on real services and Prefect's API: what it starts, and what it leaves alone."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


def _old(path: Path) -> Path:
    then = time.time() - 60
    os.utime(path, (then, then))
    return path


def test_the_sweep_starts_waiting_files_and_skips_loaded_and_queued_ones(
    ingest: Any, home: Path
) -> None:
    from prefect.deployments import run_deployment

    from flows.ingest_file import ingest_file
    from flows.sweep_inbox import sweep_inbox
    from tasks.sweep import queued_paths

    inbox = home / "inbox" / "swept"
    loaded = _old(weather_csv(inbox / "loaded.csv", rows=20))
    assert ingest(loaded).is_completed()
    _old(loaded)
    queued = _old(weather_csv(inbox / "queued.csv", rows=20))
    waiting = _old(weather_csv(inbox / "waiting.csv", rows=20))
    fresh = weather_csv(inbox / "fresh.csv", rows=20)  # still being written, maybe
    ingest_file.to_deployment("ingest-file").apply()  # no runner: its runs stay scheduled
    run_deployment(
        "ingest-file/ingest-file", parameters={"path": str(queued)}, timeout=0, as_subflow=False
    )
    assert str(queued) in queued_paths()

    summary = sweep_inbox(quiet_s=5, clean=False)

    assert summary["waiting"] == [str(waiting)]
    assert (summary["loaded"], summary["queued"], summary["still_written"]) == (1, 1, 1)
    assert str(waiting) in queued_paths()  # the sweep's own run, for a worker to take
    assert str(fresh) not in queued_paths()


def test_a_file_the_sensor_lets_go_while_the_sweep_looks_gets_no_second_run(
    ingest: Any, home: Path
) -> None:
    """serve's sensor holds a file until a run thread is free, then creates its run and lets it
    go. A sweep that asks for the live runs before the sensor lets go, and for the holds after,
    sees neither and starts a second run of the file (a bench showed one in 500)."""
    from prefect.deployments import run_deployment

    from flows.ingest_file import ingest_file
    from flows.sweep_inbox import sweep_inbox
    from sluice import sensor
    from tasks.sweep import queued_paths

    path = _old(weather_csv(home / "inbox" / "let_go" / "a.csv", rows=20))
    ingest_file.to_deployment("ingest-file").apply()  # no runner: its runs stay scheduled

    class LettingGo:
        """A sensor that held the file until now: asked, it creates the file's run, lets go."""

        def holds(self, held: str) -> bool:
            if held == str(path) and str(path) not in queued_paths():
                run_deployment(
                    "ingest-file/ingest-file",
                    parameters={"path": held},
                    timeout=0,
                    as_subflow=False,
                )
            return False

    sensor._WATCHING.add(LettingGo())  # type: ignore[arg-type]
    try:
        summary = sweep_inbox(quiet_s=5, clean=False)
    finally:
        sensor._WATCHING.clear()

    assert summary["waiting"] == []
    assert summary["queued"] == 1
