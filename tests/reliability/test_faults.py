"""Fault injection against real services: no file lost, no row doubled, whatever dies when.

Each test names its fault. Afterwards every file is loaded exactly once or kept in quarantine
with a dead letter, the hypertable holds exactly the loaded files' rows, and no
(file, `_row`) pair is there twice (`exactly_once`).
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from sluice.read import fingerprint
from tests.data import weather_csv
from tests.fix_stack import Stack, wait_for
from tests.fixtures.formats import CASES
from tests.reliability.conftest import exactly_once

pytestmark = [pytest.mark.services, pytest.mark.reliability]
ROWS = 20_000  # small, but more than one staged batch and COPY chunk


def _table_rows(stack: Stack, dataset: str) -> int | None:
    """Rows in public.<dataset>, None when the table does not exist."""
    with stack.connect() as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"public.{dataset}",)).fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute(f"SELECT count(*) FROM public.{dataset}").fetchone()  # noqa: S608
        return int(row[0]) if row else 0


def _ledger_has(stack: Stack, file_id: str) -> bool:
    with stack.connect() as conn:
        return bool(
            conn.execute("SELECT 1 FROM sluice.files WHERE file_id = %s", (file_id,)).fetchone()
        )


def _task_states(stack: Stack, run_name: str) -> dict[str, str]:
    """Task state names of the newest flow run with this name, from the Prefect server."""
    api = stack.env["PREFECT_API_URL"]
    runs = httpx.post(
        f"{api}/flow_runs/filter",
        json={
            "flow_runs": {"name": {"any_": [run_name]}},
            "sort": "START_TIME_DESC",
            "limit": 1,
        },
    ).json()
    assert runs, f"no flow run named {run_name}"
    tasks = httpx.post(
        f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [runs[0]["id"]]}}}
    ).json()
    return {t["task_key"].split("-")[0]: t["state"]["name"] for t in tasks}


# one task per stage (a large file with SLUICE_ONE_PASS=false): each stage resumable
PER_STAGE = {"SLUICE_FUSE_BELOW_BYTES": "0", "SLUICE_ONE_PASS": "false"}


@pytest.mark.parametrize("point", ["read", "validate", "copy"])
def test_sigkill_mid_stage_then_a_new_run_loads_the_file_once(stack: Stack, point: str) -> None:
    dataset = f"killed_in_{point}"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)
    file_id, _ = fingerprint(path)

    # one task per stage (as for a file of SLUICE_FUSE_BELOW_BYTES or more): a run resumes
    # after the last stage that completed
    per_stage = PER_STAGE
    killed = stack.ingest(path, faults=point, **per_stage)

    assert killed.returncode == -9, killed.stderr
    assert path.exists()  # nothing moved, nothing quarantined
    assert not _ledger_has(stack, file_id)
    assert not _table_rows(stack, dataset)  # no partial rows visible (or no table at all)
    assert stack.redis().exists(stack.keys().lock(file_id))  # the dead run's, until its lease ends

    again = stack.ingest(path, **per_stage)

    assert again.returncode == 0, again.stderr
    assert again.outcomes() == ["loaded"]
    exactly_once(stack, dataset, {path: ROWS}, fault=f"SIGKILL during {point}", runs=2)
    if point == "validate":  # the new run resumed after the last good stage
        name = f"ingest-file/{dataset}/a.csv"
        # the server records task states from the run's events, in batches (up to 1 s late)
        wait_for(lambda: "load" in _task_states(stack, name), 15, "the new run's load task")
        states = _task_states(stack, name)
        assert states["read"] == "Cached" and states["infer_schema"] == "Cached", states
        assert states["validate"] == "Completed", states


@pytest.mark.parametrize("point", ["read", "validate", "copy"])
def test_sigkill_mid_one_pass_then_a_new_run_loads_the_file_once(stack: Stack, point: str) -> None:
    """A large file's one pass (read..load in the load's transaction): killed anywhere in it,
    nothing is visible; the next run loads the file once."""
    dataset = f"killed_one_pass_{point}"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)
    file_id, _ = fingerprint(path)
    large = {"SLUICE_FUSE_BELOW_BYTES": "0", "SLUICE_BATCH_ROWS": "5000"}  # 4 batches, chunks

    killed = stack.ingest(path, faults=point, **large)

    assert killed.returncode == -9, killed.stderr
    assert path.exists()
    assert not _ledger_has(stack, file_id)
    assert not _table_rows(stack, dataset)  # no partial rows visible (no table at all)

    again = stack.ingest(path, **large)

    assert again.returncode == 0, again.stderr
    assert again.outcomes() == ["loaded"]
    exactly_once(stack, dataset, {path: ROWS}, fault=f"SIGKILL in one pass at {point}", runs=2)
    # the server records a task's states from the run's events, in batches (up to 1 s late)
    wait_for(
        lambda: _task_states(stack, f"ingest-file/{dataset}/a.csv").get("onepass") == "Completed",
        timeout=15,
        what="the new run's one-pass task Completed on the server",
    )


def test_sigkill_right_after_commit_then_a_new_run_is_a_duplicate(stack: Stack) -> None:
    dataset = "killed_after_commit"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)
    file_id, _ = fingerprint(path)

    killed = stack.ingest(path, faults="commit")

    assert killed.returncode == -9
    assert _ledger_has(stack, file_id)  # committed: the rows are durable and visible
    assert _table_rows(stack, dataset) == ROWS
    assert (stack.home / "staging" / file_id).exists()  # the dead run could not clean up

    again = stack.ingest(path)

    assert again.returncode == 0, again.stderr
    assert again.outcomes() == ["duplicate"]
    assert not (stack.home / "staging" / file_id).exists()  # the new run cleaned up after it
    exactly_once(stack, dataset, {path: ROWS}, fault="SIGKILL right after commit", runs=2)


@pytest.mark.parametrize("fuse", ["per_stage", "fused"])
def test_redis_restarted_mid_run(stack: Stack, fuse: str) -> None:
    """Per stage: Redis loses the read stage's stored result; fused (a small file's prepare
    task): Redis loses the file's lock and the prepare task's cache lock mid-task."""
    dataset = f"redis_restarted_{fuse}"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)
    file_id, _ = fingerprint(path)
    r = stack.redis()
    keys = stack.keys()

    env = PER_STAGE if fuse == "per_stage" else {}
    run = stack.start(path, faults="validate=sleep:4", **env)
    wait_for(lambda: r.exists(keys.file(file_id)), 120, "the run to claim its file")
    if fuse == "per_stage":
        wait_for(lambda: r.keys(f"{keys.prefix}result:read:*"), 120, "the read stage's result")
    else:
        wait_for(lambda: r.keys(f"lock:{keys.prefix}result:prepare:*"), 120, "prepare's cache lock")
    stack.services("down", "redis")
    stack.services("up", "redis")  # empty: Redis here keeps nothing on disk
    out, err = run.communicate(timeout=300)
    runs = 1
    if run.returncode != 0:  # allowed: the file stays in the inbox for the next run
        assert path.exists(), err
        retry = stack.ingest(path)
        assert retry.returncode == 0, retry.stderr
        runs = 2
    fault = f"Redis restarted mid-run ({fuse.replace('_', ' ')})"
    exactly_once(stack, dataset, {path: ROWS}, fault=fault, runs=runs)


def test_redis_down_longer_than_the_retries_keeps_the_file_for_a_later_run(stack: Stack) -> None:
    dataset = "redis_down"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)
    stack.services("down", "redis")
    try:
        failed = stack.ingest(path)
    finally:
        stack.services("up", "redis")

    assert failed.returncode == 1
    assert "Redis unavailable" in failed.stderr
    assert path.exists()
    assert not list((stack.home / "quarantine").glob(f"{dataset}/*"))

    later = stack.ingest(path)

    assert later.returncode == 0, later.stderr
    assert later.outcomes() == ["loaded"]
    exactly_once(stack, dataset, {path: ROWS}, fault="Redis down past the retries", runs=2)


def test_postgres_restarted_mid_copy(stack: Stack) -> None:
    dataset = "pg_restarted"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)

    run = stack.start(path, faults="copy=sleep:4")

    def copying() -> bool:
        with stack.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice' "
                "AND query LIKE 'COPY%%' AND state <> 'idle'"
            ).fetchone()
            return bool(row and row[0])

    wait_for(copying, 120, "the COPY to start")
    stack.services("down", "postgres")
    stack.services("up", "postgres")
    out, err = run.communicate(timeout=300)

    assert run.returncode == 0, err  # the load's retries outlast the restart
    assert out.split()[0] == "loaded"
    exactly_once(stack, dataset, {path: ROWS}, fault="PostgreSQL restarted mid-COPY", runs=1)


def test_the_same_file_submitted_five_times_at_once(stack: Stack) -> None:
    dataset = "five_at_once"
    path = weather_csv(stack.inbox(dataset) / "a.csv", rows=ROWS)

    procs = [stack.start(path) for _ in range(5)]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]

    assert all(code == 0 for _, code in results), [err for (_, err), _ in results]
    outcomes = sorted(out.split()[0] for (out, _), _ in results)
    assert outcomes == ["duplicate"] * 4 + ["loaded"]
    exactly_once(stack, dataset, {path: ROWS}, fault="same file 5x concurrently", runs=5)


def test_a_batch_of_fifty_files_with_ten_malformed(stack: Stack) -> None:
    dataset = "batch"
    inbox = stack.inbox(dataset)
    bad = [c for c in CASES if c.error and not c.rules]
    files: dict[Path, int] = {}
    for i in range(40):
        files[weather_csv(inbox / f"good_{i:02}.csv", rows=200 + i)] = 200 + i
    for i in range(10):
        case = bad[i % len(bad)]
        body = case.build() if i < len(bad) else case.build() + b"\n" * i  # unique content
        path = inbox / f"bad_{i:02}_{case.name}"
        path.write_bytes(body)
        files[path] = 0
    order = list(files)
    random.Random(50).shuffle(order)

    run = stack.ingest(*order, timeout=600)

    assert run.returncode == 1  # some files were quarantined
    outcomes = dict(zip(order, run.outcomes(), strict=True))
    assert sorted(outcomes.values()).count("loaded") == 40
    assert sorted(outcomes.values()).count("quarantined") == 10
    assert all(not p.exists() for p, rows in files.items() if rows == 0)  # moved, not deleted
    figures = exactly_once(stack, dataset, files, fault="50 files, 10 malformed", runs=1)
    assert (figures.loaded, figures.quarantined) == (40, 10)
