"""The inbox sensor on a real filesystem: complete files announced once, partial ones never."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from sluice.sensor import Arrival, InboxSensor, ignored, waiting_files


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sensor(inbox: Path, clock: Clock, **kwargs: object) -> tuple[InboxSensor, list[Arrival]]:
    got: list[Arrival] = []
    sensor = InboxSensor(inbox, got.append, quiet_s=1.0, clock=clock, **kwargs)  # type: ignore[arg-type]
    return sensor, got


def _drain(sensor: InboxSensor) -> None:
    """Run the announcer over what is queued (run() does this on its own thread)."""
    sensor._queue.put(None)
    sensor._announcer()


def test_a_file_is_announced_once_after_its_quiet_period(tmp_path: Path) -> None:
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    path = tmp_path / "weather" / "a.csv"
    path.parent.mkdir()
    path.write_text("ts,v\n")
    sensor.observe([path])
    sensor.tick()
    clock.now += 0.5
    sensor.tick()
    assert sensor._queue.qsize() == 0  # not quiet long enough
    clock.now += 0.6
    sensor.tick()
    sensor.observe([path])  # a late event for the same version
    clock.now += 2
    sensor.tick()
    _drain(sensor)
    assert [(a.path, a.dataset, a.size) for a in got] == [(str(path), "weather", 5)]


def test_a_file_still_growing_waits_until_it_stops(tmp_path: Path) -> None:
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    path = tmp_path / "slow.csv"
    now_ns = time.time_ns()  # a writer's mtime is the time of its last write: now
    with path.open("w") as f:
        for i in range(5):
            f.write(f"row {i}\n")
            f.flush()
            os.utime(path, ns=(now_ns, now_ns + i * 10**6))  # mtime moves on each append
            sensor.observe([path])
            clock.now += 0.6  # less than the quiet period between appends
            sensor.tick()
    assert sensor._queue.qsize() == 0
    clock.now += 1.1
    sensor.tick()
    _drain(sensor)
    assert len(got) == 1 and got[0].size == path.stat().st_size


def test_a_done_marker_announces_at_once(tmp_path: Path) -> None:
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    path = tmp_path / "a.csv"
    path.write_text("x\n")
    (tmp_path / "a.csv.done").touch()
    sensor.observe([path, tmp_path / "a.csv.done"])
    sensor.tick()  # no time has passed
    _drain(sensor)
    assert [a.path for a in got] == [str(path)]


@pytest.mark.parametrize(
    "name",
    [".hidden.csv", "a.csv.part", "a.tmp", "a.csv~", "a.csv.done", "x.crdownload", ".sub/a.csv"],
)
def test_temporary_hidden_and_marker_files_are_ignored(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    assert ignored(path, tmp_path)
    assert list(waiting_files(tmp_path)) == []


def test_a_rewritten_file_is_a_new_version_and_announced_again(tmp_path: Path) -> None:
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    path = tmp_path / "a.csv"
    path.write_text("one\n")
    sensor.observe([path])
    clock.now += 2
    sensor.tick()
    path.write_text("one\ntwo\n")
    sensor.observe([path])
    clock.now += 2
    sensor.tick()
    _drain(sensor)
    assert [a.size for a in got] == [4, 8]
    assert got[0].resource_id != got[1].resource_id


def test_files_waiting_at_start_are_announced_unless_already_handled(tmp_path: Path) -> None:
    clock = Clock()
    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / "ds" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "ds" / name).write_text(name)
    sensor, got = _sensor(tmp_path, clock, skip=lambda a: a.path.endswith("b.csv"))
    assert sensor.scan() == 3
    sensor.tick()
    _drain(sensor)
    assert sorted(Path(a.path).name for a in got) == ["a.csv", "c.csv"]
    assert sensor.skipped == 1


def test_a_file_that_vanished_before_its_quiet_period_is_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    path = tmp_path / "a.csv"
    path.write_text("x")
    sensor.observe([path])
    path.unlink()
    clock.now += 2
    sensor.tick()
    _drain(sensor)
    assert got == [] and sensor.pending == 0


def test_the_watcher_announces_a_burst_with_a_slow_consumer_and_loses_none(tmp_path: Path) -> None:
    """inotify for real; a queue of 8 and a consumer slower than the producer: backpressure."""
    got: list[Arrival] = []

    def slow(arrival: Arrival) -> None:
        time.sleep(0.001)
        got.append(arrival)

    sensor = InboxSensor(tmp_path, slow, quiet_s=0.3, queue_size=8)
    stop = threading.Event()
    thread = threading.Thread(target=sensor.run, args=(stop,), kwargs={"tick_s": 0.1})
    (tmp_path / "burst").mkdir()
    (tmp_path / "burst" / "early.csv").write_text("waiting before the start\n")
    thread.start()
    try:
        time.sleep(0.5)
        for i in range(1000):
            (tmp_path / "burst" / f"f{i:04}.csv").write_text(f"{i}\n")
        deadline = time.monotonic() + 30
        while len(got) < 1001 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    names = sorted(Path(a.path).name for a in got)
    assert len(names) == 1001
    assert len(set(names)) == 1001  # each once
    assert not thread.is_alive()


def test_a_file_moved_in_complete_is_announced_at_the_next_tick(tmp_path: Path) -> None:
    """Its mtime is older than the quiet period: it has been quiet that long already."""
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    (tmp_path / "ds").mkdir()
    written = tmp_path / ".elsewhere.csv"  # a dotfile: not a candidate while it is written
    written.write_text("ts,v\n2024-01-01,1\n")
    old = time.time() - 5
    os.utime(written, (old, old))
    moved = written.rename(tmp_path / "ds" / "a.csv")
    fresh = tmp_path / "ds" / "b.csv"  # written just now: it waits for its quiet period
    fresh.write_text("ts,v\n2024-01-02,2\n")

    sensor.observe([moved, fresh])
    sensor.tick()
    _drain(sensor)

    assert [Path(a.path).name for a in got] == ["a.csv"]


def test_files_in_a_folder_that_appears_are_seen_with_it(tmp_path: Path) -> None:
    """A folder moved (or made and filled) before the watch on it started: only the folder's
    own event arrives, and its files are found by scanning it."""
    clock = Clock()
    sensor, got = _sensor(tmp_path, clock)
    folder = tmp_path / "newds"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("ts,v\n2024-01-01,1\n")

    sensor.observe([folder])
    clock.now += 1.1
    sensor.tick()
    _drain(sensor)

    assert sorted(Path(a.path).name for a in got) == ["a.csv", "b.csv"]
    assert {a.dataset for a in got} == {"newds"}


def test_a_file_the_announcer_holds_back_is_held_until_announced(tmp_path: Path) -> None:
    """serve's sensor waits for a free run thread inside its announcement: the sweep of the
    same process asks `held` and leaves such a file alone."""
    from sluice import sensor as module

    release = threading.Event()
    sensor = InboxSensor(tmp_path, lambda _arrival: release.wait(10), quiet_s=0.0)
    path = tmp_path / "ds" / "a.csv"
    path.parent.mkdir()
    path.write_text("ts,v\n2024-01-01,1\n")
    stop = threading.Event()
    watcher = threading.Thread(target=sensor.run, args=(stop,), daemon=True)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while not module.held(str(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert module.held(str(path))
        assert not module.held(str(tmp_path / "ds" / "other.csv"))
        release.set()
        deadline = time.monotonic() + 10
        while module.held(str(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not module.held(str(path))
    finally:
        release.set()
        stop.set()
        watcher.join(timeout=10)
