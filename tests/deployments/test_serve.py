"""`sluice serve` on a real Prefect server: files dropped in the inbox become completed runs.

The sensor emits `sluice.file.arrived`, the server's trigger makes an `ingest-file` run per
event, and serve's warm executor runs it: every step real (tests/fix_stack.py). Each test has
an inbox of its own (its own SLUICE_HOME), so serve's sensor sees only that test's files.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.catalog import ensure_catalog
from sluice.read import fingerprint
from tests.data import weather_csv
from tests.fix_services import doubled_rows
from tests.fix_stack import REPO, SLUICE, Stack, stop, wait_for

pytestmark = [pytest.mark.services, pytest.mark.deployments, pytest.mark.timeout(900)]


class Served:
    def __init__(self, stack: Stack, home: Path, proc: subprocess.Popen[str]) -> None:
        self.stack, self.home, self.proc = stack, home, proc

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        """wait_for, with the end of serve's log in the failure (what it was doing)."""
        try:
            wait_for(condition, timeout, what)
        except AssertionError as exc:
            tail = (self.home.parent / "serve.log").read_text()[-4000:]
            raise AssertionError(f"{exc}\n--- sluice serve log (end) ---\n{tail}") from None

    def inbox(self, dataset: str) -> Path:
        folder = self.home / "inbox" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def ledger(self, dataset: str) -> dict[str, int]:
        with self.stack.connect() as conn:
            ensure_catalog(conn)
            rows = conn.execute(
                "SELECT file_id, rows FROM sluice.files WHERE dataset = %s", (dataset,)
            ).fetchall()
        return {str(k): int(v) for k, v in rows}

    def runs(self, dataset: str) -> list[dict[str, Any]]:
        return self.stack.flow_runs(f"ingest-file/{dataset}/")


@pytest.fixture
def serving(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `sluice serve [ARGS]` on the stack with a SLUICE_HOME of this test; stop it after."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        home = tmp_path / "home"
        (home / "inbox").mkdir(parents=True, exist_ok=True)
        env = {**stack.env, "SLUICE_HOME": str(home), "SLUICE_SENSOR_QUIET_S": "0.5"}
        with (tmp_path / "serve.log").open("w") as log:  # serve writes to its own copy of it
            proc = subprocess.Popen(
                [SLUICE, "serve", *args], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                text=True, start_new_session=True,
            )  # fmt: skip
        started.append(proc)
        wait_for(
            lambda: "watching" in (tmp_path / "serve.log").read_text() or proc.poll() is not None,
            120,
            "sluice serve to start",
        )
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        return Served(stack, home, proc)

    yield start
    for proc in started:
        stop(proc)


def test_a_file_dropped_in_the_inbox_becomes_a_completed_run_and_rows(
    serving: Callable[..., Served],
) -> None:
    served = serving()
    path = weather_csv(served.inbox("dropped") / "a.csv", rows=500)
    file_id, _ = fingerprint(path)

    served.wait(lambda: served.ledger("dropped"), 300, "the file to be loaded")

    assert served.ledger("dropped") == {file_id: 500}
    wait_for(lambda: [r for r in served.runs("dropped") if r["state_type"] == "COMPLETED"], 30,
             "the run to complete")  # fmt: skip
    (run,) = served.runs("dropped")
    assert run["name"] == "ingest-file/dropped/a.csv"
    assert run["deployment_id"] is not None  # a deployment run, re-runnable from the UI
    assert run["parameters"]["path"] == str(path)


def test_fifty_files_dropped_at_once_are_fifty_runs_each_loaded_once(
    serving: Callable[..., Served],
) -> None:
    served = serving()
    inbox = served.inbox("burst")
    staging = served.home / "drop"
    staging.mkdir()
    ids = set()
    for i in range(50):  # written aside, then moved in at once, as a copy tool does
        ids.add(fingerprint(weather_csv(staging / f"f{i:02}.csv", rows=100 + i))[0])
    for path in staging.iterdir():
        path.rename(inbox / path.name)

    served.wait(lambda: len(served.ledger("burst")) == 50, 600, "50 files to be loaded")
    wait_for(
        lambda: sum(r["state_type"] == "COMPLETED" for r in served.runs("burst")) == 50,
        60,
        "50 completed runs",
    )

    assert set(served.ledger("burst")) == ids
    assert sum(served.ledger("burst").values()) == sum(100 + i for i in range(50))
    assert len(served.runs("burst")) == 50  # one run per file: no event was doubled
    with served.stack.connect() as conn:
        assert doubled_rows(conn, "burst") == 0


def test_a_file_written_slowly_is_ingested_once_and_complete(
    serving: Callable[..., Served],
) -> None:
    served = serving()
    source = weather_csv(served.home / "source.csv", rows=400).read_text().splitlines(True)
    path = served.inbox("slow") / "growing.csv"
    with path.open("w") as f:  # 4 s of appends, 0.2 s apart: never quiet for 0.5 s
        for start in range(0, len(source), 20):
            f.writelines(source[start : start + 20])
            f.flush()
            time.sleep(0.2)

    served.wait(lambda: served.ledger("slow"), 300, "the file to be loaded")
    # a partial version would have been announced before the whole file was quiet: its run
    # exists by the time the complete version's run has completed
    wait_for(lambda: [r for r in served.runs("slow") if r["state_type"] == "COMPLETED"], 30,
             "the run to complete")  # fmt: skip

    assert list(served.ledger("slow").values()) == [400]
    assert len(served.runs("slow")) == 1


def test_a_file_dropped_while_the_sensor_was_down_is_picked_up_by_the_sweep(
    serving: Callable[..., Served],
) -> None:
    served = serving("--no-sensor")
    path = weather_csv(served.inbox("missed") / "a.csv", rows=300)
    os.utime(path, (time.time() - 60, time.time() - 60))  # long complete
    time.sleep(2)
    assert served.ledger("missed") == {}  # nobody announced it

    (deployment,) = [
        d for d in served.stack.api("deployments/filter", {}) if d["name"] == "sweep-inbox"
    ]
    served.stack.api(f"deployments/{deployment['id']}/create_flow_run", {})

    served.wait(lambda: served.ledger("missed"), 300, "the sweep's run to load the file")
    assert list(served.ledger("missed").values()) == [300]


def test_a_schedules_backlog_runs_once_the_rest_cancelled_as_superseded(
    serving: Callable[..., Served],
) -> None:
    """Three relay-outbox runs that fell due while serve was down (a schedule's backlog): the
    next serve runs the newest and cancels the two before it, saying why."""
    from datetime import UTC, datetime, timedelta

    first = serving("--no-sensor")  # registers the deployments
    stop(first.proc)
    (deployment,) = [
        d for d in first.stack.api("deployments/filter", {}) if d["name"] == "relay-outbox"
    ]
    past = datetime.now(UTC) - timedelta(minutes=3)
    made = [
        first.stack.api(
            f"deployments/{deployment['id']}/create_flow_run",
            {
                "name": f"backlog-{i}",
                "state": {
                    "type": "SCHEDULED",
                    "state_details": {"scheduled_time": (past + timedelta(minutes=i)).isoformat()},
                },
            },
        )["id"]
        for i in range(3)
    ]

    served = serving("--no-sensor")

    def states() -> dict[str, tuple[str, str]]:
        runs = served.stack.api("flow_runs/filter", {"flow_runs": {"id": {"any_": made}}})
        return {r["name"]: (r["state_type"], r["state"]["message"] or "") for r in runs}

    served.wait(
        lambda: all(t in ("COMPLETED", "CANCELLED") for t, _ in states().values()),
        120,
        "the backlog to be handled",
    )
    final = states()
    assert final["backlog-2"][0] == "COMPLETED", final
    for older in ("backlog-0", "backlog-1"):
        assert final[older][0] == "CANCELLED" and "superseded" in final[older][1], final
