"""load: rows + ledger row in one transaction; not cached: the ledger makes it idempotent.

A load holds one of the sink's writer slots (sluice/state/locks.py WriterSlot: a semaphore with
leases in the sink's Redis), which bounds concurrent writers across every process and machine
to the limit `sluice serve` / `sluice worker --writers N` set; with no limit set a load
proceeds unbounded. Redis, not Prefect's global concurrency limits: those cost two API calls
and two events per load on the Prefect server (docs/decisions.md).

A load of at least `SLUICE_PROGRESS_ROWS` rows shows a progress artifact in its run, updated at
most once a second by a thread of its own, never by the thread that writes the COPY.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from sluice import catalog
from sluice import load as stage
from sluice.contracts import FileRef, InferredSchema, LoadReport, Staged
from sluice.errors import TransientError
from sluice.settings import get_settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from sluice.state.locks import WriterSlot
from sluice.translate import translating
from tasks.observe import notify
from tasks.policy import stage_task


@stage_task("load")
def load(ref: FileRef, ready: Staged, schema: InferredSchema) -> LoadReport:
    settings = get_settings()
    with (
        writer_slot(ref),
        translating(file=ref.path, stage="load"),
        catalog.connect(settings.dsn()) as conn,
        progress_of(ref, ready.rows) as progress,
    ):
        return stage.run(
            conn,
            ref,
            ready,
            schema,
            ref.in_force,
            schema_name=settings.schema_name,
            lock_timeout_s=settings.lock_timeout_s,
            batch_rows=settings.batch_rows,
            progress=progress,
        )


@contextmanager
def writer_slot(ref: FileRef) -> Iterator[None]:
    """Hold one of the sink's writer slots for the body; TransientError if none frees up
    within SLUICE_FILE_WAIT_S (the file stays where it is for a retry or a later run)."""
    settings = get_settings()
    with translating(file=ref.path, stage="load"):
        r = checkpoints.client(settings.redis_url.get_secret_value())
        slot = WriterSlot(r, Keys(ref.sink), lease_s=settings.file_lease_s)
        waited = slot.acquire(
            wait_s=settings.file_wait_s,
            poll_s=0.05,
            waiting=lambda held: get_run_logger().info("waiting for a writer slot (%s)", held),
        )
        if not waited:
            raise TransientError(
                f"no writer slot came free in {settings.file_wait_s:.0f} s ({slot.holder()})",
                hint="retried; other loads hold the sink's writer slots (`--writers`)",
            )
    try:
        yield
    finally:
        slot.release()


@contextmanager
def progress_of(ref: FileRef, total: int | None) -> Iterator[Callable[..., None]]:
    """The COPY's progress, `report(rows, estimate=None)`: to listeners in this process (the
    CLI's bars), and to a progress artifact on a load of SLUICE_PROGRESS_ROWS rows or more.
    `total` None: the rows are not known before the COPY (sluice.onepass), which gives its
    estimate with each report; the artifact stays below 100 % until the last row. The last
    value reaches the artifact before the block ends."""
    artifact = _ProgressArtifact(ref, total, get_settings().progress_rows)
    try:
        yield artifact.report
    finally:
        artifact.close()


class _ProgressArtifact:
    """A load's progress artifact, written by a thread of its own at most once a second.

    `report` is called by the thread that writes the COPY, and each of the artifact's API
    calls took 15-70 ms on the local server: made there, they held back the rows PostgreSQL
    was waiting for (docs/decisions.md). The thread runs in the task's context (its run, its
    Prefect client) and sends only the latest value; a failed call ends the updates with a
    warning, never the load.
    """

    def __init__(self, ref: FileRef, total: int | None, threshold: int) -> None:
        self.ref, self.total, self.threshold = ref, total, threshold
        self._latest: tuple[int, int] | None = None  # rows, expected
        self._news = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._context = contextvars.copy_context()  # the task's, whichever thread reports

    def report(self, rows: int, estimate: int | None = None) -> None:
        notify(self.ref.path, "rows", rows)
        expected = self.total or estimate
        if not expected or expected < self.threshold:
            return
        self._latest = (rows, expected)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._context.run, args=(self._send,), name="sluice-progress", daemon=True
            )
            self._thread.start()
        self._news.set()

    def close(self) -> None:
        """Send the last value, then end the thread."""
        if self._thread is not None:
            self._closing.set()
            self._news.set()
            self._thread.join()

    def _send(self) -> None:
        artifact: UUID | None = None
        sent: tuple[int, int] | None = None
        try:
            while True:
                self._news.wait()
                self._news.clear()
                closing = self._closing.is_set()
                latest = self._latest
                if latest is not None and latest != sent:
                    rows, expected = latest
                    if artifact is None:
                        artifact = create_progress_artifact(  # type: ignore[assignment]  # a UUID
                            0.0,
                            description=f"Loading {expected:,} rows of {self.ref.path} "
                            f"into {self.ref.dataset}",
                        )
                    done = 100.0 if self.total and rows >= self.total else 99.0
                    if artifact is not None:
                        update_progress_artifact(artifact, min(done, 100.0 * rows / expected))
                    sent = latest
                if closing:
                    return
                self._closing.wait(1.0)  # at most one update a second; close() cuts it short
        except Exception as exc:  # noqa: BLE001 - progress is shown, never a reason to fail
            get_run_logger().warning(
                "%s: the load's progress artifact is not updated any more: %s", self.ref.path, exc
            )
