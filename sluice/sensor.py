"""The inbox sensor: notices complete files in SLUICE_HOME/inbox and announces each version once.

A file is complete when its size and mtime have not changed for a quiet period, or when a
`<name>.done` marker appears next to it. A file whose mtime is already a quiet period old when
the sensor first sees it (one renamed or moved into the inbox complete) has been quiet that
long: it is announced at the next tick. A folder that appears is scanned, so files moved in
with it (or into it before the watch on it started) are seen. Dotfiles (and anything in a
dot folder), `*.part`, `*.tmp`, `*.crdownload`, `*.swp`, `*~` and the markers themselves are
never announced. An announcement (`Arrival`) names the file version: path, size and mtime;
the same version is announced once per sensor lifetime, a rewritten file again.

The watcher (watchfiles: inotify on Linux) only feeds a table of candidates; a tick checks the
candidates' quiet periods. Announcements go through a bounded queue to the announcing thread:
when the consumer (Prefect's event client) falls behind, the watcher waits (backpressure)
while watchfiles keeps collecting changes, so a burst of thousands of files loses none. On
start the sensor announces the files already waiting, except versions `skip` says were
handled (loaded or quarantined: see sluice/inbox.py); the sweep is the safety net for the rest.

This module does not import Prefect: deployments/file_sensor.py gives it the callback that emits
`sluice.file.arrived` events.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sluice.datasets import dataset_for

log = logging.getLogger(__name__)

MARKER = ".done"
_WATCHING: set[InboxSensor] = set()  # the sensors running in this process (`holds`)
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~", MARKER)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One complete version of a file in the inbox."""

    path: str
    dataset: str
    size: int
    mtime_ns: int

    @property
    def resource_id(self) -> str:
        """Unique per file version (path, size, mtime): a Prefect event resource id."""
        version = f"{self.path}\0{self.size}\0{self.mtime_ns}".encode()
        return f"sluice.file.arrival.{hashlib.sha256(version).hexdigest()[:24]}"


def ignored(path: Path, inbox: Path) -> bool:
    """Names that are not (yet) data files: temporary, hidden, partial, or done markers."""
    try:
        parts = path.relative_to(inbox).parts
    except ValueError:
        return True
    return (
        not parts or any(p.startswith(".") for p in parts) or path.name.endswith(_IGNORED_SUFFIXES)
    )


def waiting_files(inbox: Path) -> Iterator[Path]:
    """Every file below the inbox that is not ignored (sorted: oldest folders first, stable)."""
    for root, dirs, files in os.walk(inbox):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if not ignored(path, inbox):
                yield path


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    changed: float  # monotonic time of the last change we saw
    ready: bool = False  # a .done marker says the writer is finished


class InboxSensor:
    """Feed `observe()` paths that changed and call `tick()` often; complete files are announced.

    `announce(arrival)` runs on the announcing thread (`run()` starts it), never on the watcher.
    """

    def __init__(
        self,
        inbox: Path,
        announce: Callable[[Arrival], None],
        *,
        quiet_s: float = 1.0,
        queue_size: int = 1000,
        skip: Callable[[Arrival], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.inbox = inbox
        self.quiet_s = quiet_s
        self._announce = announce
        self._skip = skip
        self._clock = clock
        self._wall = wall
        self._candidates: dict[Path, _Candidate] = {}
        self._announced: dict[Path, tuple[int, int]] = {}
        self._queue: queue.Queue[Arrival | None] = queue.Queue(maxsize=queue_size)
        self._held: set[str] = set()  # paths queued or being announced
        self._held_lock = threading.Lock()
        self.announced = 0
        self.skipped = 0

    # -- the table of candidates (watcher thread) -------------------------------------------

    def observe(self, paths: Iterable[Path]) -> None:
        now = self._clock()
        for path in paths:
            if path.name.endswith(MARKER) and not path.name.startswith("."):
                self._mark_ready(path.with_name(path.name[: -len(MARKER)]), now)
                continue
            if ignored(path, self.inbox):
                continue
            if path.is_dir():  # files in a new folder may predate the watch on it
                for inside in waiting_files(path):
                    if not ignored(inside, self.inbox):
                        self._see(inside, now)
                continue
            self._see(path, now)

    def _see(self, path: Path, now: float, *, ready: bool = False) -> None:
        try:
            st = path.stat()
        except OSError:  # gone again (moved to quarantine, renamed, deleted)
            self._candidates.pop(path, None)
            return
        if not path.is_file():
            return
        known = self._candidates.get(path)
        if known is None or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns):
            # unchanged since its mtime: quiet that long already (a file moved in complete)
            quiet_for = min(self.quiet_s, max(0.0, self._wall() - st.st_mtime_ns / 1e9))
            changed = now - quiet_for if known is None else now
            self._candidates[path] = _Candidate(
                st.st_size, st.st_mtime_ns, changed, ready or bool(known and known.ready)
            )
        elif ready:
            known.ready = True

    def _mark_ready(self, path: Path, now: float) -> None:
        if path.exists() and not ignored(path, self.inbox):
            self._see(path, now, ready=True)

    def tick(self) -> None:
        """Announce the candidates that are complete; forget the ones that went away."""
        now = self._clock()
        for path, cand in list(self._candidates.items()):
            try:
                st = path.stat()
            except OSError:
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns, cand.changed = st.st_size, st.st_mtime_ns, now
                if not cand.ready:
                    continue
            if not cand.ready and now - cand.changed < self.quiet_s:
                continue
            del self._candidates[path]
            self._offer(path, cand.size, cand.mtime_ns)

    def _offer(self, path: Path, size: int, mtime_ns: int) -> None:
        if self._announced.get(path) == (size, mtime_ns):
            return
        arrival = Arrival(str(path), dataset_for(path, self.inbox, None), size, mtime_ns)
        if self._skip is not None and self._skip(arrival):
            self.skipped += 1
            self._announced[path] = (size, mtime_ns)
            return
        self._announced[path] = (size, mtime_ns)
        with self._held_lock:
            self._held.add(arrival.path)
        self._queue.put(arrival)  # blocks when the announcer is behind: backpressure

    def scan(self, *, at_start: bool = True) -> int:
        """Take in the files waiting in the inbox; returns how many. At start they count as
        complete (announced at the next tick); later (`at_start=False`: the files that came
        while the watch was being set up) their mtime says whether they are quiet yet."""
        now = self._clock()
        count = 0
        for path in waiting_files(self.inbox):
            self._see(path, now - self.quiet_s if at_start else now)
            count += 1
        return count

    @property
    def pending(self) -> int:
        """Candidates not yet complete plus announcements queued."""
        return len(self._candidates) + self._queue.qsize()

    # -- threads ---------------------------------------------------------------------------

    def _announcer(self) -> None:
        while (arrival := self._queue.get()) is not None:
            try:
                self._announce(arrival)
                self.announced += 1
            except Exception:  # noqa: BLE001 - one failed announcement must not stop the rest
                log.exception("could not announce %s; the sweep will pick it up", arrival.path)
            finally:
                with self._held_lock:
                    self._held.discard(arrival.path)

    def holds(self, path: str) -> bool:
        """Whether the sensor will announce the file at `path` (or is announcing it now)."""
        with self._held_lock:
            if path in self._held:
                return True
        return Path(path) in self._candidates

    def run(self, stop: threading.Event, *, tick_s: float = 0.2) -> None:
        """Watch until `stop` is set: scan, then observe changes and tick every `tick_s`."""
        import watchfiles  # the Rust watcher: imported where the sensor runs

        self.inbox.mkdir(parents=True, exist_ok=True)
        announcer = threading.Thread(target=self._announcer, name="sluice-announcer", daemon=True)
        announcer.start()
        _WATCHING.add(self)
        try:
            log.info("sensor: %d file(s) already waiting in %s", self.scan(), self.inbox)
            self.tick()
            watching = False
            for changes in watchfiles.watch(
                self.inbox,
                stop_event=stop,
                yield_on_timeout=True,
                rust_timeout=int(tick_s * 1000),
                debounce=int(tick_s * 1000),
                step=50,
                recursive=True,
                ignore_permission_denied=True,
            ):
                if not watching:  # the watch is in place now: files that came since the scan
                    watching = True
                    self.scan(at_start=False)
                gone = watchfiles.Change.deleted
                self.observe(Path(p) for change, p in changes if change != gone)
                self.tick()
        finally:
            _WATCHING.discard(self)
            self._queue.put(None)
            announcer.join(timeout=30)


def held(path: str) -> bool:
    """Whether a sensor running in this process will announce the file (or is announcing it):
    `sluice serve`'s sensor holds files back while every run thread is busy, and the sweep
    must not start second runs of them."""
    return any(sensor.holds(path) for sensor in tuple(_WATCHING))
