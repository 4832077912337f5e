"""One pass from a large file to its committed rows, at the speed of PostgreSQL's COPY.

read, infer_schema, profile, validate, enrich and transform run batch by batch inside the load's
transaction while the server ingests the COPY (write-audit-publish in one transaction): the
file's rows stream from the reader, each text column is converted once (the conversion that
inference checks is the one loaded), profiled, validated and encoded, and PostgreSQL ingests
the previous chunk meanwhile. The verdict comes once every row has passed: a failing file rolls
back whole (its rows, its ledger row, any DDL), a passing one commits with its ledger row. The
staged path (sluice.read -> ... -> sluice.load, a task per stage) costs three passes over the
data and no overlap; it remains for what one pass cannot decide as the rows stream.

Types are decided before the COPY starts, from a sample: the first batches, until every text
column has shown a value (at most SAMPLE_ROWS rows). Inference goes on over every batch; if a
later batch changes a column's type (a number column that turns out to hold text, a time column
with a value out of its format), the pass is `Refuted`: the transaction rolls back and the pass
runs again with the types of the whole file, inferred first in a pass of its own.

Threads: the producer reads, converts, profiles and validates (it drives the validation, which
pulls batches); an encoder turns the typed batches into COPY chunks a few ahead
(sluice.load.prefetch); the caller's thread writes them to the connection. Memory is bounded by a
few batches, the sample, and the columns whole-file expectations read (the key).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sluice import enrich, faults, read
from sluice.contracts import (
    Column,
    FileRef,
    InferredSchema,
    LoadReport,
    Profile,
    ValidationReport,
)
from sluice.datasets import DatasetRules
from sluice.errors import SluiceError, UnreadableFile
from sluice.load import transaction as load
from sluice.names import unique_identifiers
from sluice.profile import store as profiles
from sluice.profile.stats import Profiler, as_target
from sluice.read.readers import Notes
from sluice.schema.casts import convert_column
from sluice.schema.inference import Candidate, Inference
from sluice.validate import drift, verdict
from sluice.validate import runner as validate
from sluice.validate.chunks import Validated

log = logging.getLogger(__name__)
SAMPLE_ROWS = 1_000_000  # most rows read before the COPY starts, waiting for undecided columns
_POLL_S = 0.1
Conn = Any  # psycopg.Connection (kept untyped at this edge, as load's callers pass it)


Converted = dict[str, tuple[Candidate, pa.Array]]  # Inference.add's: candidate, values
Sampled = tuple[pa.RecordBatch, Converted]


class Refuted(Exception):
    """A batch changed a type the COPY had started with: the pass must start again."""


@dataclass(frozen=True, slots=True)
class Options:
    """How the pass runs: what load.load_batches needs, and where to read the history from."""

    schema_name: str
    lock_timeout_s: float
    batch_rows: int
    side: Callable[[], Any]  # a context manager of a second connection (profile, history)
    progress: Callable[[int, int | None], None] | None = None  # rows sent, total estimated
    # ("profile", Profile) and ("validation", ValidationReport) once decided, before the verdict
    decided: Callable[[str, object], None] | None = None


@dataclass(frozen=True, slots=True)
class Passed:
    """What one pass produced: the load, and what the stages it ran would have returned."""

    load: LoadReport
    schema: InferredSchema
    profile: Profile | None
    validation: ValidationReport | None
    seconds: dict[str, float]
    passes: int = 1  # 2 when the first was refuted


def applies(rules: DatasetRules) -> bool:
    """One pass decides a file only at its end, with every row sent: setting rows aside
    (`on_error: rows`, `on_missing_time: rows`) needs the verdict before the rows go, so it
    takes the staged path."""
    return rules.on_error == "file" and rules.time_mode == "file"


def run(conn: Conn, ref: FileRef, options: Options) -> Passed:
    """Load the file in one pass; again with the whole file's types if the sample misled."""
    try:
        return _pass(conn, ref, options, fixed=None)
    except Refuted as why:
        log.info("%s: %s; inferring over the whole file, then loading again", ref.path, why)
        started = time.perf_counter()
        schema = infer_whole(ref, options.batch_rows)
        passed = _pass(conn, ref, options, fixed=schema)
        seconds = {**passed.seconds, "infer_schema": time.perf_counter() - started}
        return replace(passed, seconds=seconds, passes=2)


def infer_whole(ref: FileRef, batch_rows: int) -> InferredSchema:
    """Inference over every batch of the file, before a pass that then cannot be refuted."""
    raw = _open(ref, batch_rows)
    inference = Inference(raw.schema, ref.in_force)
    for batch in raw.batches:
        inference.add(batch)
    return raw.inferred(inference)


# --- reading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Raw:
    """The reader's batches under staged (safe) names, with the staged schema's metadata, and
    what the reader noted (guesses, preamble; a footer only once every batch is read)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    notes: Notes

    def inferred(self, inference: Inference) -> InferredSchema:
        """What the evidence so far implies, with the reader's guesses and the file's
        metadata as far as it has read."""
        return inference.schema(tuple(self.notes.guesses), self.notes.meta())


def _open(ref: FileRef, batch_rows: int) -> _Raw:
    with at(ref, "read"):
        source = read.detect_source(Path(ref.path))
        opened = read.reader_for(source)(source, ref.in_force, batch_rows)
        batches = (b for b in opened.batches if b.num_rows)
        first = next(batches, None)
    if first is None:
        raise UnreadableFile(
            "the file has a header but no rows", file=ref.path, stage="read", hint="nothing to load"
        )
    schema = read.staged_schema(opened, first.schema, unique_identifiers(opened.names))

    def renamed() -> Iterator[pa.RecordBatch]:
        """The reader's batches under the staged names, at most `batch_rows` rows each (a
        reader's blocks may hold more; the staged path reads its file back in such batches)."""
        batch: pa.RecordBatch | None = first
        while batch is not None:
            renamed = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            for start in range(0, renamed.num_rows, batch_rows):
                yield renamed.slice(start, batch_rows)
            if batch is first:
                faults.point("read")
            with at(ref, "read"):
                batch = next(batches, None)

    return _Raw(schema, renamed(), opened.notes)


@contextmanager
def at(ref: FileRef, stage: str) -> Iterator[None]:
    """A Sluice error raised in here names the file and this stage (unless it named its own)."""
    try:
        yield
    except SluiceError as exc:
        raise exc.at(file=ref.path, stage=stage) from None


# --- one pass --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Clock:
    """Seconds per stage, summed over the batches (the pass's own thread)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - since
        return now


def _pass(conn: Conn, ref: FileRef, options: Options, fixed: InferredSchema | None) -> Passed:
    rules = ref.in_force
    clock = _Clock()
    started = time.perf_counter()
    raw = _open(ref, options.batch_rows)
    inference = Inference(raw.schema, rules)
    sample = _sample(raw, inference, clock) if fixed is None else []
    tentative = fixed or raw.inferred(inference)
    stream = _Stream(ref, raw, sample, inference, tentative, rules, clock, fixed is None)
    progress, estimate = options.progress, _estimate(ref, raw, sample)
    try:
        report = load.load_batches(
            conn,
            ref,
            tentative,
            rules,
            stream.loaded(ref),
            schema_name=options.schema_name,
            lock_timeout_s=options.lock_timeout_s,
            progress=None if progress is None else (lambda rows: progress(rows, estimate)),
            verdict=lambda: stream.decide(ref, options),
        )
    finally:
        stream.stop()
    clock.seconds["enrich"] = stream.enrich_s
    clock.seconds["load"] = time.perf_counter() - started
    return Passed(
        load=report,
        schema=stream.final or tentative,
        profile=stream.profile,
        validation=stream.validation,
        seconds=clock.seconds,
    )


def _sample(raw: _Raw, inference: Inference, clock: _Clock) -> list[Sampled]:
    """The first batches, until no text column is undecided or SAMPLE_ROWS are in."""
    sample: list[Sampled] = []
    rows = 0
    while True:
        since = time.perf_counter()
        batch = next(raw.batches, None)
        since = clock.add("read", since)
        if batch is None:
            return sample
        sample.append((batch, inference.add(batch)))
        clock.add("infer_schema", since)
        rows += batch.num_rows
        if not inference.undecided() or rows >= SAMPLE_ROWS:
            return sample


def _estimate(ref: FileRef, raw: _Raw, sample: list[Sampled]) -> int | None:
    """The file's rows, guessed from the sample's text (a progress bar's total): None for a
    compressed or typed file, whose size says little of its rows."""
    rows: int = sum(int(batch.num_rows) for batch, _ in sample)
    texts = all(pa.types.is_string(f.type) for f in raw.schema)
    if not rows or not texts or read.detect_source(Path(ref.path)).compression:
        return None
    # a value's bytes, less its 4-byte offset, plus its delimiter
    text = int(sum(batch.nbytes for batch, _ in sample)) - 3 * rows * len(raw.schema)
    return max(rows, int(ref.size * rows / max(text, 1)))


def decided(schema: InferredSchema) -> tuple[tuple[object, ...], ...]:
    """What a COPY started with must keep: each column's type, scale and text format (whether
    a column holds nulls may change; the time column's NOT NULL is checked by its expectation)."""
    return tuple((c.name, c.pg_type, c.scale, c.text_format, c.parts) for c in schema.columns) + (
        (schema.time_column, "", 0, "", ()),
    )


class _Stream:
    """The typed batches of one pass, profiled and validated on their way to the COPY."""

    def __init__(
        self,
        ref: FileRef,
        raw: _Raw,
        sample: list[Sampled],
        inference: Inference,
        tentative: InferredSchema,
        rules: DatasetRules,
        clock: _Clock,
        speculative: bool,
    ) -> None:
        self.ref, self.raw, self.sample, self.inference = ref, raw, sample, inference
        self.tentative, self.rules, self.clock = tentative, rules, clock
        self.speculative = speculative
        self.expected = decided(tentative)
        self.profiler = Profiler(tentative)
        self.rows = 0
        self.final: InferredSchema | None = None
        self.profile: Profile | None = None
        self.validation: ValidationReport | None = None
        self._validated: Validated | None = None
        self._failure: BaseException | None = None
        self._ahead: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._producer: threading.Thread | None = None
        self.doomed = False  # a row the table refuses was seen: the COPY gets no more
        self._waited = 0.0  # the COPY's side, waiting for the producer
        self.enrich_s = 0.0  # the COPY's side, adding the lineage columns

    # the producer's side ------------------------------------------------------------------

    def _typed(self) -> Iterator[pa.RecordBatch]:
        """Every batch converted to the tentative types (reusing inference's conversion where
        it is the same one), checked against them, and profiled."""
        target = self.profiler.target
        pending = iter(self.sample)
        while True:
            since = time.perf_counter()
            item = next(pending, None)
            if item is None:
                batch = next(self.raw.batches, None)
                since = self.clock.add("read", since)
                if batch is None:
                    return
                item = (batch, {})
                if self.speculative:
                    item = (batch, self.inference.add(batch))
                    if decided(self.raw.inferred(self.inference)) != self.expected:
                        raise Refuted(self._change())
                    since = self.clock.add("infer_schema", since)
            batch, converted = item
            with at(self.ref, "transform"):
                arrays = as_target(self._converted(batch, converted), target)
            since = self.clock.add("transform", since)
            self.profiler.add(arrays)
            self.clock.add("profile", since)
            self.rows += batch.num_rows
            yield pa.RecordBatch.from_arrays(arrays, schema=target)

    def _converted(self, batch: pa.RecordBatch, converted: Converted) -> list[pa.Array]:
        """The batch as the tentative types; inference's conversion where it is the load's (same
        type and format; numeric applies a scale inference did not)."""
        arrays = []
        for col in self.tentative.columns:
            made = converted.get(col.name)
            if made is not None and made[0] == (col.pg_type, col.text_format):
                if col.pg_type != "numeric" and not col.parts:
                    arrays.append(made[1])
                    continue
            arrays.append(convert_column(batch, col, self.rules.time_zone))
        return arrays

    def _change(self) -> str:
        now = {c.name: c for c in self.raw.inferred(self.inference).columns}
        changed = [
            f"{c.source!r} {c.pg_type} -> {now[c.name].pg_type if c.name in now else 'none'}"
            for c in self.tentative.columns
            if c.name not in now
            or (c.pg_type, c.scale, c.text_format)
            != (now[c.name].pg_type, now[c.name].scale, now[c.name].text_format)
        ]
        where = f"after row {self.rows:,}"
        return f"types changed {where}: {', '.join(changed) or 'the time column'}"

    def _forward(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Each batch to the COPY's queue, then to the validation pulling it. After a batch
        with a null time (the table's NOT NULL would refuse it; the baseline's expectation fails
        the file) the COPY gets no more rows: the validation goes on to the file's end, for a
        report that says what failed and where, and its verdict then rolls back."""
        where = self.profiler.where
        for batch in batches:
            if where >= 0 and batch.column(where).null_count:
                self.doomed = True
            if self.doomed:
                yield batch
                continue
            since = time.perf_counter()
            while not self._stop.is_set():
                try:
                    self._ahead.put(batch, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            self.clock.add("waiting", since)  # for the COPY: not the validation's time
            if self._stop.is_set():
                return
            yield batch

    def _produce(self) -> None:
        apart = ("read", "infer_schema", "transform", "profile", "waiting")
        before = sum(self.clock.seconds.get(s, 0.0) for s in apart)
        try:
            since = time.perf_counter()
            with at(self.ref, "validate"):
                self._validated = validate.run_batches(
                    self._forward(self._typed()), self.profiler.target, self.tentative, self.rules
                )
            self.clock.add("validate", since)
            # the stages upstream of the validation ran inside it (it pulls the batches)
            upstream = sum(self.clock.seconds.get(s, 0.0) for s in apart) - before
            self.clock.seconds["validate"] -= upstream
            self.clock.seconds.pop("waiting", None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._failure = exc
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while not self._stop.is_set():
            try:
                self._ahead.put(_END, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    # the COPY's side ----------------------------------------------------------------------

    def loaded(self, ref: FileRef) -> Iterator[pa.RecordBatch]:
        """The typed batches with their lineage columns, as the COPY takes them."""
        self._producer = threading.Thread(target=self._produce, name="sluice-onepass", daemon=True)
        self._producer.start()
        schema = pa.schema([*self.profiler.target, *enrich.LINEAGE])
        skip = np.empty(0, dtype=np.int64)
        lineage = enrich.with_lineage(self._taken(), schema, ref.file_id, _now(), skip)
        try:
            while True:
                since, waited = time.perf_counter(), self._waited
                batch = next(lineage, None)
                self.enrich_s += time.perf_counter() - since - (self._waited - waited)
                if batch is None:
                    return
                yield batch
        finally:
            self.stop()

    def stop(self) -> None:
        """The COPY ended (or failed): the producer stops at its next batch."""
        self._stop.set()

    def _taken(self) -> Iterator[pa.RecordBatch]:
        while True:
            since = time.perf_counter()
            item = self._ahead.get()
            self._waited += time.perf_counter() - since
            if item is _END:
                if self._failure is not None:
                    raise self._failure
                return
            yield item

    def decide(self, ref: FileRef, options: Options) -> InferredSchema:
        """Inside the transaction, every row sent: the whole file's types must be those the
        COPY started with; then the profile and the verdict (raising rolls everything back)."""
        if self._producer is not None:
            self._producer.join()
        if self._failure is not None:
            raise self._failure
        if self.speculative:
            final = self.raw.inferred(self.inference)  # the footer, if any, is read by now
            if decided(final) != self.expected:
                raise Refuted(self._change())
            self.final = replace(final, columns=self._nullability(final))
        else:
            self.final = self.tentative
        since = time.perf_counter()
        self.profile = self.profiler.result(self.rows)
        self.validation = _report(ref, self._validated, self.profile, self.rules, options)
        if options.decided is not None:
            options.decided("profile", self.profile)
            options.decided("validation", self.validation)
        self.clock.add("validate", since)
        with at(ref, "validate"):
            verdict.check(self.validation, self.final.time_column)
        if self.doomed:  # never commit a file some of whose rows the COPY did not get
            raise RuntimeError(f"{ref.path}: rows with a null time passed validation")
        return self.final

    def _nullability(self, final: InferredSchema) -> tuple[Column, ...]:
        return tuple(
            replace(c, nullable=f.nullable)
            for c, f in zip(self.tentative.columns, final.columns, strict=True)
        )


def _report(
    ref: FileRef,
    validated: Validated | None,
    profile: Profile,
    rules: DatasetRules,
    options: Options,
) -> ValidationReport:
    """Drift against the dataset's history; the profile and the report stored (on a connection
    of their own: they stay when the file fails, they say why)."""
    assert validated is not None  # the producer ended without a failure
    with options.side() as side:
        history = profiles.history(side, ref.dataset, rules.drift.history, exclude=ref.file_id)
        report = replace(validated.report, mode=rules.on_error)
        findings = drift.compare(profile, history, rules.drift)
        report = replace(report, drift=findings, history=len(history))
        profiles.save(side, ref, profile)
        profiles.save_validation(side, ref, report)
    return report


_END = object()


def _now() -> datetime:
    return datetime.now(UTC)
