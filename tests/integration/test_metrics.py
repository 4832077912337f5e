"""What a run leaves for people watching: Prometheus metrics scraped over HTTP after in-process
runs and from `sluice serve` and the sensor on the private stack, the stage log lines, and the
run's tags, summary and progress artifacts read back through the Prefect client."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sluice import metrics
from sluice.settings import Settings
from sluice.state.checkpoints import Keys
from tests.data import weather_csv

pytestmark = [pytest.mark.services, pytest.mark.flow]


@pytest.fixture
def scrape() -> Iterator[Any]:
    """`scrape()`: {(sample name, sorted labels): value} from a live /metrics endpoint."""
    server = metrics.start(0, "127.0.0.1")
    assert server is not None
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    yield read
    server.shutdown()
    server.server_close()


def _sample(url: str, name: str, **labels: str) -> float:
    """One sample of a live endpoint: 0 when absent, -1 while the endpoint does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def _moved(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_a_loaded_file_moves_its_counters_by_its_rows_and_bytes(
    ingest: Any, home: Path, scrape: Any
) -> None:
    path = weather_csv(home / "inbox" / "metricsok" / "a.csv", rows=130)
    before = scrape()

    assert ingest(path).is_completed()

    after = scrape()
    assert _moved(before, after, "sluice_files_total", dataset="metricsok", outcome="loaded") == 1
    assert _moved(before, after, "sluice_rows_total", dataset="metricsok") == 130
    assert _moved(before, after, "sluice_bytes_total", dataset="metricsok") == path.stat().st_size
    for stage in ("fingerprint", "read", "infer_schema", "profile", "validate", "load"):
        assert _moved(before, after, "sluice_stage_seconds_count", stage=stage) == 1, stage
    assert _moved(before, after, "sluice_end_to_end_seconds_count", dataset="metricsok") == 1
    assert after[("sluice_runs_in_flight", ())] == 0
    assert after[("sluice_outbox_pending", ())] == 0  # the run relayed its event


def test_a_duplicate_and_a_quarantined_file_are_counted_apart(
    ingest: Any,
    home: Path,
    scrape: Any,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    good = weather_csv(home / "inbox" / "metricsbad" / "a.csv", rows=20)
    bad = home / "inbox" / "metricsbad" / "ragged.csv"
    bad.write_text("ts,v\n2024-01-01,1\n2024-01-02,2,3\n")
    assert ingest(good).is_completed()
    before = scrape()

    assert ingest(good).is_completed()
    assert ingest(bad).is_failed()

    after = scrape()
    moved = {
        outcome: _moved(before, after, "sluice_files_total", dataset="metricsbad", outcome=outcome)
        for outcome in ("loaded", "duplicate", "quarantined")
    }
    assert moved == {"loaded": 0, "duplicate": 1, "quarantined": 1}
    assert _moved(before, after, "sluice_rows_total", dataset="metricsbad") == 0
    assert after[("sluice_dead_letters", ())] == redis_client.xlen(sink_keys.dead) >= 1


def _run_details(flow_run_id: Any) -> tuple[list[str], dict[str, Any]]:
    """The flow run's tags and its artifacts by type (the newest of each type)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> tuple[list[str], dict[str, Any]]:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
        return run.tags, {a.type: a for a in found}

    return asyncio.run(read())


def _run_logs(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)

    async def read() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        return [log.message for log in logs]

    return asyncio.run(read())


STAGE_LINES = ("fingerprint", "read", "infer_schema", "profile", "validate", "load")


@pytest.mark.parametrize("fused", [False, True], ids=["per_stage", "fused"])
def test_each_stage_logs_one_line_with_the_file_id_and_its_seconds(
    ingest: Any,
    home: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fused: bool,
) -> None:
    """A big file's stage tasks (one per stage: SLUICE_ONE_PASS=false) log their lines to the
    run (the UI); a small file's one `file`
    task logs its line and its stages' lines to the `sluice.stages` logger only, and the run
    ships its one end line (`file_id=... outcome=...`)."""
    from sluice.read import fingerprint

    if not fused:
        monkeypatch.setattr(settings, "fuse_below_bytes", 0)
        monkeypatch.setattr(settings, "one_pass", False)
    path = weather_csv(home / "inbox" / f"logged_{fused}" / "a.csv", rows=60)
    file_id, _ = fingerprint(path)

    with caplog.at_level("INFO", logger="sluice.stages"):
        state = ingest(path)

    assert state.is_completed()
    run_logs = _run_logs(state.state_details.flow_run_id)
    shipped = [m for m in run_logs if m.startswith("stage=")]
    local = [r.getMessage() for r in caplog.records if r.name == "sluice.stages"]
    lines = local if fused else shipped
    stages = [line.split()[0].removeprefix("stage=") for line in lines]
    for stage in STAGE_LINES:
        assert stages.count(stage) == 1, (stage, lines)
    if fused:
        assert shipped == [] and stages.count("file") == 1, (shipped, lines)
    [end] = [m for m in run_logs if m.startswith("file_id=")]
    assert f"file_id={file_id} outcome=loaded rows=60 " in end
    [load] = [line for line in lines if line.startswith("stage=load ")]
    fields = dict(part.split("=", 1) for part in load.split())
    assert fields["file_id"] == file_id and fields["outcome"] == "ok"
    assert float(fields["seconds"]) > 0 and fields["file"] == str(path)


def test_a_run_has_its_dataset_tag_a_summary_and_a_progress_artifact(
    ingest: Any, home: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "progress_rows", 1)  # every load shows its progress
    path = weather_csv(home / "inbox" / "observed" / "a.csv", rows=2_500)

    state = ingest(path)

    assert state.is_completed()
    tags, artifacts = _run_details(state.state_details.flow_run_id)
    assert {"sluice", "dataset:observed"} <= set(tags)
    summary = artifacts["markdown"]
    assert summary.key == "summary-observed"
    assert "### a.csv: loaded" in summary.data
    assert "| rows | 2,500 |" in summary.data
    assert "| table | public.observed (created) |" in summary.data
    assert "| load |" in summary.data and "| read |" in summary.data
    assert float(artifacts["progress"].data) == 100.0
    assert "#### profile" in summary.data and "#### validation" in summary.data
    assert "table" not in artifacts  # one artifact for the file, with the stages' tables


@pytest.mark.timeout(1200)  # serve on a shared, loaded CI machine: its waits are bounded below
def test_sluice_serve_exports_the_metrics_of_its_runs_and_its_sensor(
    stack: Any, tmp_path: Path
) -> None:
    """`sluice serve` on the private stack (tests/fix_stack.py): a dropped file's run moves the
    counters of the endpoint on SLUICE_METRICS_PORT."""
    import socket
    import subprocess

    from tests.fix_stack import REPO, SLUICE, stop, wait_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    home = tmp_path / "home"
    (home / "inbox" / "servedmetrics").mkdir(parents=True)
    env = {**stack.env, "SLUICE_HOME": str(home), "SLUICE_SENSOR_QUIET_S": "0.5",
           "SLUICE_METRICS_PORT": str(port), "SLUICE_METRICS_ADDR": "127.0.0.1"}  # fmt: skip
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [SLUICE, "serve"], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"

    def sample(name: str, **labels: str) -> float:
        return _sample(url, name, **labels)

    try:
        wait_for(lambda: "watching" in log.read_text() or proc.poll() is not None, 300, "serve")
        assert proc.poll() is None, log.read_text()
        path = weather_csv(home / "inbox" / "servedmetrics" / "a.csv", rows=210)
        loaded = {"dataset": "servedmetrics", "outcome": "loaded"}
        wait_for(lambda: sample("sluice_files_total", **loaded) == 1, 600, "a loaded file")

        assert sample("sluice_rows_total", dataset="servedmetrics") == 210
        assert sample("sluice_bytes_total", dataset="servedmetrics") == path.stat().st_size
        assert sample("sluice_arrivals_total", dataset="servedmetrics") == 1
        assert sample("sluice_end_to_end_seconds_count", dataset="servedmetrics") == 1
        assert sample("sluice_stage_seconds_count", stage="load") == 1
        # back to 0 once every run ends (serve may also be running runs other tests left queued
        # on the shared server, so not necessarily at this instant)
        wait_for(lambda: sample("sluice_runs_in_flight") == 0, 300, "no run in flight")
    finally:
        stop(proc)


def test_the_sensor_alone_exports_arrivals_and_the_inbox_lag(stack: Any, tmp_path: Path) -> None:
    """`python -m deployments.file_sensor` on the private stack: a file waiting for an hour is
    announced once and shows as one waiting file an hour old."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from tests.fix_stack import REPO, stop, wait_for

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    home = tmp_path / "home"
    path = weather_csv(home / "inbox" / "sensed" / "a.csv", rows=10)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    env = {**stack.env, "SLUICE_HOME": str(home), "SLUICE_SENSOR_QUIET_S": "0.2",
           "SLUICE_METRICS_PORT": str(port), "SLUICE_METRICS_ADDR": "127.0.0.1"}  # fmt: skip
    log = tmp_path / "sensor.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deployments.file_sensor"], env=env, cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"

    def sample(name: str, **labels: str) -> float:
        return _sample(url, name, **labels)

    try:
        wait_for(lambda: sample("sluice_arrivals_total", dataset="sensed") == 1, 60, "arrival")
        wait_for(lambda: sample("sluice_inbox_waiting") == 1, 30, "the inbox gauges")

        assert 3590 <= sample("sluice_inbox_lag_seconds") <= 3700
        assert sample("sluice_sensor_pending") == 0
    finally:
        stop(proc, 30)
    assert "1 announced" in log.read_text()


def test_the_progress_artifact_is_sent_off_the_copy_thread_and_ends_at_the_last_row(
    ingest: Any, home: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that writes the COPY only hands each value over; the artifact's API calls
    run on another thread, and the last value is in the artifact when the load ends (three
    batches: the values after the first come within its second, and are sent at the end)."""
    import threading

    import tasks.load

    monkeypatch.setattr(settings, "progress_rows", 1)
    monkeypatch.setattr(settings, "batch_rows", 1_000)
    reporters: set[str] = set()
    senders: set[str] = set()
    report, update = tasks.load._ProgressArtifact.report, tasks.load.update_progress_artifact

    def reporting(self: Any, rows: int, estimate: int | None = None) -> None:
        reporters.add(threading.current_thread().name)
        report(self, rows, estimate)

    def sending(*args: Any, **kwargs: Any) -> Any:
        senders.add(threading.current_thread().name)
        return update(*args, **kwargs)

    monkeypatch.setattr(tasks.load._ProgressArtifact, "report", reporting)
    monkeypatch.setattr(tasks.load, "update_progress_artifact", sending)
    path = weather_csv(home / "inbox" / "observed" / "b.csv", rows=2_500)

    state = ingest(path)

    assert state.is_completed()
    assert reporters and senders == {"sluice-progress"}, (reporters, senders)
    assert "sluice-progress" not in reporters
    _, artifacts = _run_details(state.state_details.flow_run_id)
    assert float(artifacts["progress"].data) == 100.0


def test_a_progress_artifact_that_cannot_be_written_does_not_fail_the_load(
    ingest: Any, home: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.load

    monkeypatch.setattr(settings, "progress_rows", 1)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the API refused the update")

    monkeypatch.setattr(tasks.load, "update_progress_artifact", refused)
    path = weather_csv(home / "inbox" / "observed" / "c.csv", rows=2_500)

    state = ingest(path)

    assert state.is_completed() and state.result().outcome == "loaded"
    logs = _run_logs(state.state_details.flow_run_id)
    assert any(
        "progress artifact is not updated any more: the API refused the update" in line
        for line in logs
    ), logs
