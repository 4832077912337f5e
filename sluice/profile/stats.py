"""Per-column statistics of a staged file, in one pass of bounded memory, with pyarrow.compute.

Each column gets its count, nulls (and null ratio), a distinct count (text: exact up to
DISTINCT_CAP values, then a lower bound; numbers and times: exact up to 2,048 values, then an
estimate within a few percent) and min/max; numbers their mean and standard deviation
(merged batch by batch with Chan's formula, which keeps large offsets exact) and a histogram;
dates and times a histogram; categories (text, boolean) their most frequent values. The time
column adds its span, whether rows come in time order, the typical step between consecutive
times and the gaps: stretches of more than GAP_STEPS steps without a row (found on a fine
histogram, to within its bin width).

The pass also writes the file cast to its inferred types (`typed.parquet` in the staging
area): validate and enrich read that copy, so the text is parsed once per file, here.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import (
    Bin,
    Column,
    ColumnProfile,
    FileRef,
    InferredSchema,
    Profile,
    Staged,
    TimeProfile,
)
from sluice.datasets import DatasetRules
from sluice.profile.sketches import Bins, Counts, Distinct, finite_only
from sluice.read import raw as raw_stage
from sluice.schema.casts import arrow_type, convert_columns
from sluice.schema.inference import infer
from sluice.staging import Location, iter_batches, remove, write_batches

STAGE = "profile"
DISTINCT_CAP = 100_000
TOP_VALUES = 20  # category values kept per column: all of them when there are no more
HISTOGRAM_BINS = 20  # bins a histogram is shown with
GAP_STEPS = 3.0  # a gap: more than this many typical steps without a row
NUMERIC = frozenset({"bigint", "double precision", "numeric"})
TEMPORAL = frozenset({"date", "timestamp", "timestamptz"})
CATEGORY = frozenset({"text", "boolean"})
COUNTED = CATEGORY | {"jsonb"}  # distinct by value counts; the others by hashes (Distinct)
_US = 1_000_000
_EdgeText = Callable[[float], str]
_DAY_US = 86_400 * _US


@dataclass(slots=True)
class _Moments:
    """Count, mean and sum of squared deviations, merged batch by batch (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        k = len(values)
        if not k:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.n + k
        delta = mean - self.mean
        self.mean += delta * k / total
        self.m2 += m2 + delta * delta * self.n * k / total
        self.n = total

    def stddev(self) -> float | None:
        return math.sqrt(max(self.m2 / (self.n - 1), 0.0)) if self.n > 1 else None


@dataclass(slots=True)
class _Acc:
    """Running statistics of one column, mergeable batch by batch."""

    column: Column
    count: int = 0
    nulls: int = 0
    low: object = None
    high: object = None
    moments: _Moments = field(default_factory=_Moments)
    bins: Bins = field(default_factory=Bins)
    counts: Counts = field(default_factory=lambda: Counts(cap=DISTINCT_CAP))
    distinct: Distinct = field(default_factory=Distinct)

    def add(self, arr: pa.Array) -> None:
        self.count += len(arr)
        self.nulls += arr.null_count
        if arr.null_count == len(arr):
            return
        kind = self.column.pg_type
        if kind != "boolean":
            bounds = pc.min_max(arr)
            self.low = _pick(min, self.low, bounds["min"].as_py())
            self.high = _pick(max, self.high, bounds["max"].as_py())
        if kind in COUNTED:
            self.counts.add(arr)
            return
        present = arr.drop_null() if arr.null_count else arr
        keys = _keys(present)
        self.distinct.add(keys)
        if kind in NUMERIC:  # a float column's keys are its float64 values: cast once
            numbers = keys if keys.dtype == np.float64 else present.cast(pa.float64()).to_numpy()
            finite = finite_only(numbers)
            self.moments.add(finite)
            self.bins.add(finite)
        elif kind in TEMPORAL:
            self.bins.add(micros(arr))

    def result(self) -> ColumnProfile:
        kind = self.column.pg_type
        top: tuple[tuple[str, int], ...] = ()
        if kind in COUNTED:
            distinct, exact = self.counts.distinct(), self.counts.exact
        else:
            distinct, exact = self.distinct.estimate(), self.distinct.exact
        if kind in CATEGORY:
            top = tuple((_text(v) or "", n) for v, n in self.counts.top(TOP_VALUES))
        numeric = kind in NUMERIC and self.moments.n > 0
        return ColumnProfile(
            name=self.column.name,
            pg_type=kind,
            count=self.count,
            nulls=self.nulls,
            distinct=distinct,
            min=_text(self.low),
            max=_text(self.high),
            mean=self.moments.mean if numeric else None,
            stddev=self.moments.stddev() if numeric else None,
            distinct_exact=exact,
            top=top,
            histogram=self._histogram(),
        )

    def _histogram(self) -> tuple[Bin, ...]:
        edge = _edge_text(self.column.pg_type)
        return tuple(
            Bin(edge(lower), edge(upper), count)
            for lower, upper, count in self.bins.bins(HISTOGRAM_BINS)
        )


@dataclass(slots=True)
class _Timeline:
    """The time column's order, typical step and occupancy (for gaps), batch by batch."""

    column: Column
    bins: Bins = field(default_factory=lambda: Bins(size=65_536))
    ordered: bool = True
    last: float | None = None
    steps: list[float] = field(default_factory=list)  # each batch's median step (µs)

    def add(self, arr: pa.Array) -> None:
        values = micros(arr)
        if not len(values):
            return
        self.bins.add(values)
        if self.ordered:
            behind = self.last is not None and values[0] < self.last
            self.ordered = not behind and bool(np.all(np.diff(values) >= 0))
        self.last = float(values[-1])
        # the steps between distinct times: in a batch in time order its positive differences
        # (no sort needed); otherwise those of its sorted distinct values
        steps = np.diff(values) if self.ordered else np.diff(np.unique(values))
        steps = steps[steps > 0]
        if len(steps):
            self.steps.append(float(np.median(steps)))

    def result(self, low: object, high: object) -> TimeProfile:
        step = statistics.median(self.steps) if self.steps else None
        runs = self.bins.empty_runs(GAP_STEPS * step) if step else []
        edge = _edge_text(self.column.pg_type)
        return TimeProfile(
            column=self.column.name,
            start=_text(low),
            end=_text(high),
            ordered=self.ordered,
            step_s=step / _US if step else None,
            gaps=len(runs),
            largest_gaps=tuple((edge(a), edge(b)) for a, b in runs[:5]),
            resolution_s=self.bins.width / _US if self.bins.counts is not None else 0.0,
        )


def _keys(values: pa.Array) -> np.ndarray:
    """Non-null values as 64-bit numbers whose bit patterns identify them (for Distinct)."""
    kind = values.type
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return np.asarray(values.cast(pa.float64()).to_numpy())
    if pa.types.is_date(kind):
        values = values.cast(pa.date32()).cast(pa.int32())
    elif pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        values = values.cast(pa.int64())
    return np.asarray(values.cast(pa.int64()).to_numpy())


def micros(arr: pa.Array) -> np.ndarray:
    """A date or timestamp column's non-null values as float64 microseconds since the epoch."""
    values = arr.drop_null()
    if pa.types.is_date(values.type):
        days = values.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.float64)
        return np.asarray(days * _DAY_US)
    stamps = values.cast(pa.timestamp("us", values.type.tz)).cast(pa.int64())
    return np.asarray(stamps.to_numpy().astype(np.float64))


def _edge_text(pg_type: str) -> _EdgeText:
    if pg_type == "date":
        return lambda us: (dt.date(1970, 1, 1) + dt.timedelta(microseconds=us)).isoformat()
    if pg_type in ("timestamp", "timestamptz"):
        tz = dt.UTC if pg_type == "timestamptz" else None
        epoch = dt.datetime(1970, 1, 1, tzinfo=tz)
        return lambda us: (epoch + dt.timedelta(microseconds=round(us))).isoformat()
    return lambda value: f"{value:.12g}"


def _pick(choose: Callable[[Any, Any], Any], current: object, new: object) -> object:
    if new is None:
        return current
    return new if current is None else choose(current, new)


def _text(value: object) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def typed_schema(schema: InferredSchema) -> pa.Schema:
    """The Arrow schema of `typed.parquet`: each column as its inferred type."""
    return pa.schema([pa.field(c.name, arrow_type(c.pg_type, c.scale)) for c in schema.columns])


def run(
    staged: Staged,
    schema: InferredSchema,
    rules: DatasetRules,
    batch_rows: int,
    typed_path: Location | None = None,
) -> Profile:
    """Profile the staged file; with `typed_path`, also write it there cast to its types."""
    profiler = Profiler(schema)
    batches = _typed(staged, schema, rules, batch_rows, profiler)
    if typed_path is None:
        for _ in batches:
            pass
        typed = None
    else:
        typed = write_batches(typed_path, profiler.target, batches)
    return profiler.result(staged.rows, typed)


def profile_file(
    ref: FileRef, rules: DatasetRules, staging: Location, batch_rows: int
) -> tuple[InferredSchema, Profile]:
    """The chain read -> infer_schema -> profile for one file, outside any run (`sluice suite
    init`): nothing is cached, and what it staged is removed before it returns."""
    try:
        raw = raw_stage.run(ref, rules, staging, batch_rows)
        inferred = infer(raw, rules, batch_rows)
        return inferred, run(raw, inferred, rules, batch_rows)
    finally:
        remove(staging, ref.file_id)


class Profiler:
    """The statistics of a file's typed batches (the inferred schema's columns, in order),
    added one batch at a time: the staged path here, and sluice.onepass as it loads."""

    def __init__(self, schema: InferredSchema) -> None:
        self.accs = [_Acc(col) for col in schema.columns]
        self.timeline = _timeline(schema)
        names = [c.name for c in schema.columns]
        self.where = names.index(self.timeline.column.name) if self.timeline else -1
        self.target = typed_schema(schema)

    def add(self, arrays: list[pa.Array]) -> None:
        for acc, arr in zip(self.accs, arrays, strict=True):
            acc.add(arr)
        if self.timeline is not None:
            self.timeline.add(arrays[self.where])

    def result(self, rows: int, typed: Staged | None = None) -> Profile:
        time = None
        if self.timeline is not None:
            acc = self.accs[self.where]
            time = self.timeline.result(acc.low, acc.high)
        columns = tuple(a.result() for a in self.accs)
        return Profile(rows=rows, columns=columns, time=time, typed=typed)


def _timeline(schema: InferredSchema) -> _Timeline | None:
    for col in schema.columns:
        if col.name == schema.time_column and col.pg_type in TEMPORAL:
            return _Timeline(col)
    return None


def as_target(arrays: list[pa.Array], target: pa.Schema) -> list[pa.Array]:
    """Converted columns in the exact Arrow types of the typed schema."""
    return [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, target, strict=True)]


def _typed(
    staged: Staged,
    schema: InferredSchema,
    rules: DatasetRules,
    batch_rows: int,
    profiler: Profiler,
) -> Iterator[pa.RecordBatch]:
    """The staged batches cast to their types, each added to the statistics on its way."""
    for batch in iter_batches(staged, batch_rows):
        arrays = as_target(convert_columns(batch, schema.columns, rules.time_zone), profiler.target)
        profiler.add(arrays)
        yield pa.RecordBatch.from_arrays(arrays, schema=profiler.target)
