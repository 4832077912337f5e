"""Mergeable, bounded summaries of a column seen batch by batch: a histogram and value counts.

The profile reads a file once, in batches, without knowing a column's range in advance, so
neither summary may depend on seeing all values first:

- `Bins` counts values into at most `size` equal-width bins on a grid anchored at the first
  value; when a batch falls outside, the bin width doubles (neighbouring bins merge) until
  everything fits. Counts stay exact; only the resolution coarsens. The profile's histogram is
  the occupied bins merged down to a few, and the time column's gaps are its runs of empty bins.
- `Counts` keeps each distinct value's count, exactly while there are at most `cap` values; past
  that it keeps the most frequent ones (the counts of values seen later are then lower bounds).
- `Distinct` estimates the distinct values of a number or time column from the smallest hashes
  of their bit patterns (exact up to `k` values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MAX_DOUBLINGS = 60  # a range 2**60 bin widths wide: no histogram (the values are not numbers)


@dataclass(slots=True)
class Bins:
    """Counts of float values in `size` bins of width `width`, the first at index `low`."""

    size: int = 1024
    width: float = 0.0
    anchor: float = 0.0  # bin k covers [anchor + k*width, anchor + (k+1)*width)
    low: int = 0
    counts: np.ndarray | None = None
    broken: bool = False  # the range overflowed: no histogram

    def add(self, values: np.ndarray) -> None:
        """Count finite float64 values (NaN and infinities are skipped)."""
        values = finite_only(values)
        if self.broken or not len(values):
            return
        if self.counts is None:
            self._start(float(values.min()), float(values.max()))
        assert self.counts is not None
        scaled = (values - self.anchor) / self.width
        first, last = float(scaled.min()), float(scaled.max())
        if not (math.isfinite(first) and math.isfinite(last)):
            self.broken = True
            return
        shift = self._fit(math.floor(first), math.floor(last))
        if self.broken:
            return
        index = np.floor(scaled / 2.0**shift).astype(np.int64) - self.low
        self.counts += np.bincount(index, minlength=self.size)[: self.size]

    def _start(self, low: float, high: float) -> None:
        spread = high - low
        self.anchor = low
        self.width = spread / (self.size // 2) if spread > 0 else max(abs(low) * 1e-9, 1e-9)
        if not math.isfinite(self.width) or self.width == 0:
            self.broken = True
            self.width = 1.0
        self.counts = np.zeros(self.size, dtype=np.int64)

    def _fit(self, first: int, last: int) -> int:
        """Widen the bins until [first, last] (in current bin indices) fits with what is kept;
        returns how many times the width doubled."""
        assert self.counts is not None
        occupied = np.flatnonzero(self.counts)
        low = min(first, self.low + int(occupied[0])) if len(occupied) else first
        high = max(last, self.low + int(occupied[-1])) if len(occupied) else last
        shift = 0
        while (high >> shift) - (low >> shift) >= self.size:
            shift += 1
        if shift > _MAX_DOUBLINGS:
            self.broken = True
            return shift
        if shift:
            merged = np.zeros(self.size, dtype=np.int64)
            new_low = low >> shift
            ks = (np.arange(self.size, dtype=np.int64) + self.low) >> shift
            keep = self.counts > 0
            np.add.at(merged, ks[keep] - new_low, self.counts[keep])
            self.counts, self.low = merged, new_low
            self.width *= 2.0**shift
            return shift
        if low < self.low or high >= self.low + self.size:  # slide the window, same width
            moved = np.zeros(self.size, dtype=np.int64)
            kept = np.flatnonzero(self.counts)
            moved[kept + self.low - low] = self.counts[kept]
            self.counts, self.low = moved, low
        return 0

    def bins(self, most: int) -> list[tuple[float, float, int]]:
        """The occupied range as at most `most` bins: (lower, upper, count)."""
        if self.counts is None or self.broken:
            return []
        occupied = np.flatnonzero(self.counts)
        first, last = int(occupied[0]), int(occupied[-1])
        span = last - first + 1
        group = max(1, math.ceil(span / most))
        out = []
        for start in range(first, last + 1, group):
            stop = min(start + group, last + 1)
            lower = self.anchor + (self.low + start) * self.width
            upper = self.anchor + (self.low + stop) * self.width
            out.append((lower, upper, int(self.counts[start:stop].sum())))
        return out

    def empty_runs(self, longer_than: float) -> list[tuple[float, float]]:
        """Stretches between occupied bins wider than `longer_than`: (from, to), widest first."""
        if self.counts is None or self.broken:
            return []
        occupied = np.flatnonzero(self.counts)
        if len(occupied) < 2:
            return []
        steps = np.diff(occupied)
        wide = np.flatnonzero((steps - 1) * self.width > longer_than)
        runs = [
            (
                self.anchor + (self.low + int(occupied[i]) + 1) * self.width,
                self.anchor + (self.low + int(occupied[i + 1])) * self.width,
            )
            for i in wide
        ]
        return sorted(runs, key=lambda r: r[0] - r[1])


@dataclass(slots=True)
class Counts:
    """Value -> count, exact for up to `cap` distinct values, then the most frequent ones."""

    cap: int = 100_000
    values: pa.Array | None = None
    counts: pa.Array | None = None
    exact: bool = True
    _pending: list[pa.StructArray] = field(default_factory=list)
    _pending_rows: int = 0

    def add(self, arr: pa.Array) -> None:
        """Count the non-null values of one batch (merged lazily, a few batches at a time)."""
        if arr.null_count == len(arr):
            return
        self._pending.append(pc.value_counts(arr.drop_null()))
        self._pending_rows += len(self._pending[-1])
        if self._pending_rows >= self.cap:
            self._merge()

    def _merge(self) -> None:
        parts = list(self._pending)
        self._pending, self._pending_rows = [], 0
        if not parts:
            return
        tables = [pa.table({"v": p.field("values"), "n": p.field("counts")}) for p in parts]
        if self.values is not None and self.counts is not None:
            tables.append(pa.table({"v": self.values, "n": self.counts}))
        merged = pa.concat_tables(tables).group_by("v").aggregate([("n", "sum")])
        if merged.num_rows > self.cap:
            self.exact = False
            order = pc.sort_indices(merged, sort_keys=[("n_sum", "descending")])
            merged = merged.take(order[: self.cap // 2])
        self.values, self.counts = merged.column("v").combine_chunks(), merged.column("n_sum")

    def distinct(self) -> int:
        self._merge()
        return len(self.values) if self.values is not None else 0

    def top(self, limit: int) -> list[tuple[object, int]]:
        """The `limit` most frequent values with their counts, ties in value order."""
        self._merge()
        if self.values is None or self.counts is None:
            return []
        table = pa.table({"v": self.values, "n": self.counts})
        order = pc.sort_indices(table, sort_keys=[("n", "descending"), ("v", "ascending")])
        picked = table.take(order[:limit])
        return list(
            zip(picked.column("v").to_pylist(), picked.column("n").to_pylist(), strict=True)
        )


def finite_only(values: np.ndarray) -> np.ndarray:
    """The finite values (NaN and infinities left out); the array itself when all are."""
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mixed(bits: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: 64-bit keys -> well-spread 64-bit hashes (wrapping arithmetic)."""
    h = bits.astype(np.uint64, copy=True)
    h ^= h >> np.uint64(30)
    h *= _MIX_1
    h ^= h >> np.uint64(27)
    h *= _MIX_2
    h ^= h >> np.uint64(31)
    return h


@dataclass(slots=True)
class Distinct:
    """Distinct values of 64-bit keys: exact up to `k`, then a k-minimum-values estimate.

    Keeps the `k` smallest distinct hashes; with fewer than `k` distinct keys that is all of
    them (exact), otherwise the k-th smallest hash tells the density: (k - 1) / (h_k / 2**64),
    within about 1/sqrt(k) (2% for k = 2048).
    """

    k: int = 2048
    kept: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))

    def add(self, keys: np.ndarray) -> None:
        """Add int64/uint64/float64 keys (their bit patterns are what is counted)."""
        if not len(keys):
            return
        bits = keys.view(np.uint64) if keys.dtype.itemsize == 8 else keys
        if len(self.kept) == self.k:  # full: only hashes below the k-th can enter
            hashes = _mixed(bits)
            hashes = hashes[hashes < self.kept[-1]]
        else:  # each distinct key once (a hash table, no sort)
            hashes = _mixed(pc.unique(pa.array(bits)).to_numpy())
        self.kept = np.unique(np.concatenate([self.kept, hashes]))[: self.k]

    @property
    def exact(self) -> bool:
        return len(self.kept) < self.k

    def estimate(self) -> int:
        if self.exact:
            return len(self.kept)
        return round((self.k - 1) / (float(self.kept[-1]) / 2.0**64))
