"""Profiles: per-column statistics in one bounded pass, the time column's span and gaps, the
typed copy, and the sketches they are built from (no services)."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.contracts import Staged
from sluice.datasets import DatasetRules
from sluice.profile import stats as profile
from sluice.profile import store as profiles
from sluice.profile.sketches import Bins, Counts, Distinct
from sluice.staging import write_batches
from tests.data import TS_V_CAT

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SCHEMA = TS_V_CAT


def _raw(
    tmp_path: Path, stamps: list[datetime], values: list[str | None], cats: list[str]
) -> Staged:
    table = pa.table(
        {
            "ts": [s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in stamps],
            "v": pa.array(values, pa.string()),
            "cat": cats,
        }
    )
    return write_batches(tmp_path / "raw.parquet", table.schema, table.to_batches(max_chunksize=7))


def test_columns_get_counts_null_ratio_moments_top_values_and_a_histogram(tmp_path: Path) -> None:
    n = 100
    values = [None if i % 10 == 0 else str(1e9 + i) for i in range(n)]  # a large offset
    cats = ["a" if i % 4 else "b" for i in range(n)]
    raw = _raw(tmp_path, [T0 + timedelta(minutes=i) for i in range(n)], values, cats)

    result = profile.run(raw, SCHEMA, DatasetRules("d"), 16)

    ts, v, cat = result.columns
    numbers = [float(x) for x in values if x is not None]
    assert (v.count, v.nulls, v.null_ratio, v.distinct, v.distinct_exact) == (
        100,
        10,
        0.1,
        90,
        True,
    )
    assert v.mean == pytest.approx(statistics.fmean(numbers), abs=1e-6)
    assert v.stddev == pytest.approx(statistics.stdev(numbers), rel=1e-9)  # exact despite 1e9
    assert sum(b.count for b in v.histogram) == 90 and len(v.histogram) <= profile.HISTOGRAM_BINS
    assert float(v.histogram[0].lower) <= 1e9 + 1 and float(v.histogram[-1].upper) >= 1e9 + 99
    assert (cat.distinct, cat.top, cat.categories_complete) == (2, (("a", 75), ("b", 25)), True)
    assert cat.histogram == () and cat.mean is None
    assert ts.histogram[0].lower == "2024-01-01T00:00:00+00:00"
    assert sum(b.count for b in ts.histogram) == 100


def test_the_time_column_reports_span_order_step_and_the_gaps(tmp_path: Path) -> None:
    minutes = [m for m in range(0, 600, 10) if not 200 <= m < 320] + [700]  # 130, 110 min
    stamps = [T0 + timedelta(minutes=m) for m in minutes]
    raw = _raw(tmp_path, stamps, ["1"] * len(stamps), ["x"] * len(stamps))

    time = profile.run(raw, SCHEMA, DatasetRules("d"), 8).time

    assert time is not None
    assert (time.start, time.end) == ("2024-01-01T00:00:00+00:00", "2024-01-01T11:40:00+00:00")
    assert time.ordered and time.step_s == 600
    assert time.gaps == 2
    first, second = (tuple(datetime.fromisoformat(x) for x in gap) for gap in time.largest_gaps)
    assert abs(first[0] - (T0 + timedelta(minutes=190))) < timedelta(minutes=1)  # the widest
    assert abs(first[1] - (T0 + timedelta(minutes=320))) < timedelta(minutes=1)
    assert abs(second[0] - (T0 + timedelta(minutes=590))) < timedelta(minutes=1)
    assert abs(second[1] - (T0 + timedelta(minutes=700))) < timedelta(minutes=1)


def test_rows_out_of_time_order_are_reported(tmp_path: Path) -> None:
    stamps = [T0 + timedelta(minutes=m) for m in (0, 10, 20, 5, 30)]
    raw = _raw(tmp_path, stamps, ["1"] * 5, ["x"] * 5)

    time = profile.run(raw, SCHEMA, DatasetRules("d"), 2).time

    assert time is not None and not time.ordered


def test_the_typed_copy_holds_the_inferred_types_and_profiles_the_same(tmp_path: Path) -> None:
    raw = _raw(tmp_path, [T0, T0 + timedelta(hours=1)], ["1.5", None], ["a", "b"])

    result = profile.run(raw, SCHEMA, DatasetRules("d"), 4, tmp_path / "typed.parquet")

    assert result.typed is not None and result.typed.rows == 2
    table = pq.read_table(result.typed.uri)
    assert table.schema.types == [pa.timestamp("us", "UTC"), pa.float64(), pa.string()]
    assert table.column("v").to_pylist() == [1.5, None]
    again = profile.run(result.typed, SCHEMA, DatasetRules("d"), 4)
    assert again.columns == result.columns and again.time == result.time


def test_a_profile_round_trips_through_its_stored_json(tmp_path: Path) -> None:
    raw = _raw(tmp_path, [T0, T0 + timedelta(hours=1)], ["1.5", None], ["a", "b"])
    result = profile.run(raw, SCHEMA, DatasetRules("d"), 4, tmp_path / "typed.parquet")

    doc = profiles.to_json(result)

    assert "typed" not in doc and doc["columns"][1]["null_ratio"] == 0.5
    assert profiles.from_json(doc) == profile.Profile(result.rows, result.columns, result.time)


def test_bins_keep_exact_counts_while_the_range_grows_both_ways() -> None:
    bins = Bins(size=16)
    rng = np.random.default_rng(3)
    parts = [rng.normal(0, 1, 500), rng.normal(-1e6, 1, 10), rng.normal(1e6, 1, 10), [math.nan]]
    for part in parts:
        bins.add(np.asarray(part, dtype=np.float64))

    shown = bins.bins(4)

    assert sum(c for _, _, c in shown) == 520
    assert shown[0][0] <= -1e6 - 5 and shown[-1][1] >= 1e6 + 5
    assert len(shown) <= 4


def test_counts_are_exact_below_the_cap_and_keep_the_most_frequent_above() -> None:
    counts = Counts(cap=8)
    counts.add(pa.array(["a", "b", "a", None]))
    counts.add(pa.array(["a", "c"]))
    assert (counts.distinct(), counts.exact, counts.top(2)) == (3, True, [("a", 3), ("b", 1)])
    counts.add(pa.array([f"u{i}" for i in range(20)] + ["a"] * 5))
    assert not counts.exact and counts.top(1) == [("a", 8)]


@pytest.mark.parametrize("n", [1, 2047, 50_000])
def test_distinct_is_exact_up_to_k_and_close_above(n: int) -> None:
    sketch = Distinct(k=2048)
    keys = np.arange(n, dtype=np.int64)
    for part in (keys, keys[: n // 2]):  # every key again: no double counting
        sketch.add(part)

    if n < 2048:
        assert (sketch.estimate(), sketch.exact) == (n, True)
    else:
        assert not sketch.exact and abs(sketch.estimate() - n) / n < 0.08
