"""Per-column statistics computed with pyarrow.compute over the staged batches (bounded memory)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sluice.casts import convert_columns
from sluice.contracts import Column, ColumnProfile, InferredSchema, Profile, Staged
from sluice.datasets import DatasetRules
from sluice.staging import iter_batches

STAGE = "profile"
DISTINCT_CAP = 100_000
NUMERIC = frozenset({"bigint", "double precision", "numeric"})


@dataclass(slots=True)
class _Acc:
    """Running statistics of one column, mergeable batch by batch."""

    column: Column
    count: int = 0
    nulls: int = 0
    uniques: pa.Array | None = None
    low: object = None
    high: object = None
    total: float = 0.0
    squares: float = 0.0
    numbers: int = 0

    def add(self, arr: pa.Array) -> None:
        self.count += len(arr)
        self.nulls += arr.null_count
        if arr.null_count == len(arr):
            return
        self._add_uniques(pc.unique(arr.drop_null()))
        bounds = pc.min_max(arr)
        self.low = _pick(min, self.low, bounds["min"].as_py())
        self.high = _pick(max, self.high, bounds["max"].as_py())
        if self.column.pg_type in NUMERIC:
            numbers = arr.cast(pa.float64())
            finite = pc.filter(numbers, pc.is_finite(numbers))
            self.total += pc.sum(finite).as_py() or 0.0
            self.squares += pc.sum(pc.multiply(finite, finite)).as_py() or 0.0
            self.numbers += len(finite)

    def _add_uniques(self, new: pa.Array) -> None:
        if self.uniques is None:
            self.uniques = new
        elif len(self.uniques) < DISTINCT_CAP:
            self.uniques = pc.unique(pa.concat_arrays([self.uniques, new]))

    def result(self) -> ColumnProfile:
        mean = self.total / self.numbers if self.numbers else None
        stddev = None
        if mean is not None and self.numbers > 1:
            variance = (self.squares - self.numbers * mean * mean) / (self.numbers - 1)
            stddev = math.sqrt(max(variance, 0.0))
        return ColumnProfile(
            name=self.column.name,
            pg_type=self.column.pg_type,
            count=self.count,
            nulls=self.nulls,
            distinct=len(self.uniques) if self.uniques is not None else 0,
            min=_text(self.low),
            max=_text(self.high),
            mean=mean,
            stddev=stddev,
        )


def _pick(choose: Callable[[Any, Any], Any], current: object, new: object) -> object:
    if new is None:
        return current
    return new if current is None else choose(current, new)


def _text(value: object) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def run(staged: Staged, schema: InferredSchema, rules: DatasetRules, batch_rows: int) -> Profile:
    accs = [_Acc(col) for col in schema.columns]
    for batch in iter_batches(staged, batch_rows):
        typed = convert_columns(batch, schema.columns, rules.time_zone)
        for acc, arr in zip(accs, typed, strict=True):
            acc.add(arr)
    return Profile(rows=staged.rows, columns=tuple(a.result() for a in accs))
