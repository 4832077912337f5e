"""The native checks (sluice.validate.checks) against Great Expectations: one contract, two
implementations.

Hypothesis draws small tables (nulls, NaN, -0.0, duplicates, times on and around the baseline's
1900/2200 bounds in every unit, naive and with a time zone, dates) and suites of the five
expectation types the baseline uses, with the kwargs GX takes for them. `sluice.validate` runs
each suite natively and on GX (`native=False`); every Part must be the same: the result
(success, count, sample), the rows `mostly` counts against, and the unexpected rows' indices.
The generator keeps to where GX is right: times within the years 2..9998 and int bounds that
GX's rounding to a float cannot change; the last tests show the two GX bugs not copied.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.contracts import Expectation
from sluice.validate import checks
from sluice.validate import chunks as validate_chunks
from sluice.validate import gx as validate_gx
from sluice.validate import runner as validate
from sluice.validate.chunks import Part


@pytest.fixture(scope="module", autouse=True)
def gx() -> Iterator[None]:
    """Import GX once for the module: the reference implementation."""
    validate_gx._runtime()
    yield


# --- tables -------------------------------------------------------------------------------------

KEY_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "uint8": pa.uint8(),
    "large_text": pa.large_string(),
    "float32": pa.float32(),
}
TIME_TYPES = [
    pa.timestamp("us", "UTC"),
    pa.timestamp("us"),
    pa.timestamp("ns"),
    pa.timestamp("ns", "UTC"),
    pa.timestamp("s"),
    pa.timestamp("ms", "Europe/Paris"),
    pa.date32(),
]
US = 1_000_000
EDGES_S = [  # seconds since the epoch: the baseline's bounds and their neighbours
    -2_208_988_800,  # 1900-01-01
    7_258_118_400,  # 2200-01-01
    0,
    1_704_067_200,  # 2024-01-01
]
FIRST_S, LAST_S = -62_104_060_800, 253_370_764_799  # 0002-01-01, 9998-12-31T23:59:59
_FLOATS = [0.0, -0.0, 1.5, -1.5, math.nan, math.inf, -math.inf, 2.0**53, 2.0**53 + 2, 1e300]
_TEXTS = ["a", "b", "", "null", "NaN", " a", "é", "x" * 250]


def _key_values(kind: str) -> st.SearchStrategy[Any]:
    values: dict[str, st.SearchStrategy[Any]] = {
        "int": st.integers(-3, 3) | st.sampled_from([2**62, 2**62 + 1, -(2**63)]),
        "float": st.sampled_from(_FLOATS) | st.floats(-4, 4).map(lambda f: round(f, 1)),
        "text": st.sampled_from(_TEXTS) | st.text(max_size=2),
        "bool": st.booleans(),
        "int32": st.integers(-2, 2),
        "uint8": st.integers(0, 3),
        "float32": st.sampled_from([0.0, -0.0, 0.1, math.nan, 1.5]),
    }
    values["large_text"] = values["text"]
    return values[kind]


def _time_values(arrow_type: pa.DataType) -> st.SearchStrategy[int]:
    """Values in the column's unit (days for dates), on and around the edges or anywhere."""
    if pa.types.is_date32(arrow_type):
        edges = [s // 86_400 for s in EDGES_S]
        return st.sampled_from(edges).flatmap(lambda d: st.integers(d - 1, d + 1)) | st.integers(
            -200_000, 200_000
        )
    per_s = {"s": 1, "ms": 1_000, "us": US, "ns": 1_000_000_000}[arrow_type.unit]
    near = st.sampled_from(EDGES_S).flatmap(
        lambda s: st.integers(s * per_s - 2, s * per_s + 2) | st.just(s * per_s)
    )
    if arrow_type.unit == "ns":
        return near | st.integers(-(2**63) + 1, 2**63 - 1)
    # years 2..9998: GX errs beyond, in local time too (see test_times_beyond_...)
    return near | st.integers(FIRST_S * per_s, LAST_S * per_s)


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(0, 45))
    kinds = draw(st.lists(st.sampled_from(sorted(KEY_TYPES)), min_size=2, max_size=3))
    time_type = draw(st.sampled_from(TIME_TYPES))
    columns: dict[str, pa.Array] = {}
    for number, kind in enumerate(kinds):
        values = st.none() | _key_values(kind) if draw(st.booleans()) else _key_values(kind)
        data = draw(st.lists(values, min_size=rows, max_size=rows))
        columns[f"k{number}_{kind}"] = pa.array(data, KEY_TYPES[kind])
    times = draw(st.lists(st.none() | _time_values(time_type), min_size=rows, max_size=rows))
    storage = pa.int32() if pa.types.is_date32(time_type) else pa.int64()
    columns["t"] = pa.array(times, storage).cast(time_type)
    return pa.table(columns)


# --- suites of the baseline's types ---------------------------------------------------------------

MOSTLY = st.sampled_from([0.0, 0.5, 0.9, 1.0, 1, 0.75]) | st.floats(0, 1)


def _maybe(kwargs: dict[str, Any], name: str, value: Any, draw: st.DrawFn) -> None:
    if draw(st.booleans()):
        kwargs[name] = value


@st.composite
def expectations(draw: st.DrawFn, table: pa.Table) -> Expectation:
    keys = [n for n in table.column_names if n != "t"]
    kind = draw(st.sampled_from(["count", "not_null", "unique", "compound", "between"]))
    kwargs: dict[str, Any] = {}
    if kind == "count":
        return Expectation(checks.ROW_COUNT, tuple(_row_count_kwargs(draw, table.num_rows)))
    if kind == "compound":
        kwargs["column_list"] = tuple(
            draw(st.lists(st.sampled_from([*keys, "t"]), min_size=2, max_size=3, unique=True))
        )
        _maybe(kwargs, "ignore_row_if", draw(st.sampled_from(sorted(checks._IGNORE_ROW_IF))), draw)
    elif kind == "between":
        kwargs.update(_between_kwargs(draw, table))
    else:
        kwargs["column"] = draw(st.sampled_from([*keys, "t"]))
    _maybe(kwargs, "mostly", draw(MOSTLY), draw)
    type_ = {"not_null": checks.NOT_NULL, "unique": checks.UNIQUE}.get(kind, "")
    type_ = type_ or {"compound": checks.COMPOUND_UNIQUE, "between": checks.BETWEEN}[kind]
    return Expectation(type_, tuple(kwargs.items()))


def _row_count_kwargs(draw: st.DrawFn, rows: int) -> list[tuple[str, Any]]:
    low = draw(st.none() | st.integers(0, rows + 1))
    high = draw(st.none() | st.integers(low or 0, rows + 2))
    kwargs = [("min_value", low), ("max_value", high)]
    kwargs += [(f"strict_{end}", draw(st.booleans())) for end in ("min", "max")]
    return [kv for kv in kwargs if draw(st.booleans())]


TIME_BOUNDS = [
    dt.datetime(1900, 1, 1),
    dt.datetime(2200, 1, 1),
    dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2200, 1, 1, tzinfo=dt.UTC),
    dt.date(1900, 1, 1),
    "1970-01-01T00:00:00.5",
    "2024-01-01T01:00:00+01:00",
    dt.datetime(1899, 12, 31, 23, 59, 59, 999_999),
    dt.datetime(2262, 4, 11),
]


def _between_kwargs(draw: st.DrawFn, table: pa.Table) -> dict[str, Any]:
    numeric = [n for n in table.column_names if n.endswith(("_int", "_float"))]
    column = draw(st.sampled_from(["t", *numeric]))
    if column == "t":
        bounds = st.sampled_from(TIME_BOUNDS)
    elif column.endswith("_int"):
        # small or far from every value: GX rounds int bounds (test_an_int_bound_compares_...)
        bounds = st.integers(-4, 4) | st.sampled_from([2**70, -(2**70)])
    else:
        bounds = st.sampled_from([0, 1, -1.5, 0.0, -0.0, math.inf, 2**53 + 1]) | st.floats(-4, 4)
    low, high = draw(st.none() | bounds), draw(st.none() | bounds)
    if low is None and high is None:
        low = draw(bounds)
    if low is not None and high is not None and _after(low, high, table.schema.field(column)):
        low, high = high, low
    kwargs: dict[str, Any] = {"column": column}
    kwargs.update((k, v) for k, v in (("min_value", low), ("max_value", high)) if v is not None)
    for end in ("min", "max"):
        _maybe(kwargs, f"strict_{end}", draw(st.booleans()), draw)
    return kwargs


def _after(low: Any, high: Any, field: pa.Field) -> bool:
    """low > high as GX compares them: both converted to the column's kind first."""
    low_, high_ = (checks.bound(v, field.type, checks.BETWEEN) for v in (low, high))
    return bool(low_ > high_)


@st.composite
def suites(draw: st.DrawFn) -> tuple[pa.Table, tuple[Expectation, ...]]:
    table = draw(tables())
    suite = draw(st.lists(expectations(table), min_size=1, max_size=5))
    return table, tuple(suite)


# --- the contract --------------------------------------------------------------------------------


def _same(native: Part, gx: Part) -> None:
    assert native.result == gx.result
    assert (native.considered, native.error) == (gx.considered, gx.error)
    if gx.rows is None:
        assert native.rows is None
    else:
        assert native.rows is not None and native.rows.dtype == np.int64
        assert native.rows.tolist() == gx.rows.tolist()


CONTRACT = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CONTRACT
@given(suites(), st.integers(0, 10**6), st.data())
def test_native_parts_are_gxs_parts(
    drawn: tuple[pa.Table, tuple[Expectation, ...]], first_row: int, data: st.DataObject
) -> None:
    table, suite = drawn
    collect = frozenset(data.draw(st.sets(st.integers(0, len(suite) - 1))))
    native = validate._Prepared(suite, table.schema, collect)
    reference = validate._Prepared(suite, table.schema, collect, native=False)
    everything = tuple(range(len(suite)))

    assert sorted(native.native) == list(everything)  # all five types, natively
    assert reference.native == {}
    got = native.evaluate(table, everything, first_row)
    want = reference.evaluate(table, everything, first_row)
    for index in everything:
        _same(got[index], want[index])


@CONTRACT
@given(suites(), st.data())
def test_chunk_by_chunk_the_report_and_the_rows_set_aside_are_gxs(
    drawn: tuple[pa.Table, tuple[Expectation, ...]], data: st.DataObject
) -> None:
    """The stage's way: batches, chunks of `rows` rows (a duplicate may be in two), the plan,
    row-level mode's unexpected rows."""
    table, suite = drawn
    batch = data.draw(st.integers(1, 8), label="batch rows")
    chunk = data.draw(st.integers(1, 12), label="chunk rows")
    collect = frozenset(data.draw(st.sets(st.integers(0, len(suite) - 1)), label="collect"))
    native = validate._Prepared(suite, table.schema, collect)
    reference = validate._Prepared(suite, table.schema, collect, native=False)

    def run(prepared: Any) -> validate_chunks.Validated:
        return validate_chunks.validate_batches(
            table.to_batches(max_chunksize=batch),
            table.schema,
            prepared.plan,
            prepared.evaluate,
            rows=chunk,
            sample_size=validate_chunks.SAMPLE_SIZE,
        )

    got, want = run(native), run(reference)
    assert native.plan == reference.plan
    assert got.report == want.report
    assert sorted(got.rows) == sorted(want.rows)
    for index, rows in want.rows.items():
        assert got.rows[index].tolist() == rows.tolist()


def test_the_plan_places_the_native_types_where_gx_places_their_classes() -> None:
    rt = validate_gx._runtime()
    placed = {
        name: validate_chunks.scope(rt.expectation_class(name), rt.map_bases, rt.cross_row)
        for name in checks.SCOPES
    }
    assert placed == dict(checks.SCOPES)
    assert placed == {
        checks.ROW_COUNT: "count",  # whole file, no column read
        checks.NOT_NULL: "row",
        checks.BETWEEN: "row",
        checks.UNIQUE: "whole",  # a duplicate may be in another chunk
        checks.COMPOUND_UNIQUE: "whole",
    }


# --- what GX does that may surprise: both implementations do it -----------------------------------


def _one(table: pa.Table, type_: str, native: bool, **kwargs: Any) -> tuple[bool, int, tuple]:
    (result,) = validate.validate_table(
        table, [Expectation(type_, tuple(kwargs.items()))], native=native
    ).results
    return result.success, result.unexpected_count, result.sample


BOTH = pytest.mark.parametrize("native", [True, False], ids=["native", "gx"])


@BOTH
def test_nan_is_null_as_pandas_has_it(native: bool) -> None:
    table = pa.table({"x": pa.array([1.0, math.nan, None, 1.0, math.nan], pa.float64())})

    assert _one(table, checks.NOT_NULL, native, column="x") == (False, 3, ("null",))
    # unique skips NaN as it skips nulls: only the two 1.0 are duplicates
    assert _one(table, checks.UNIQUE, native, column="x") == (False, 2, ("1.0",))
    # 2 of the 2 non-missing values: mostly counts against them, not the 5 rows
    assert _one(table, checks.UNIQUE, native, column="x", mostly=0.0)[0]


@BOTH
def test_compound_unique_takes_missing_values_as_equal(native: bool) -> None:
    table = pa.table(
        {
            "a": pa.array([1, 1, None, None, 2], pa.int64()),
            "b": pa.array([None, None, None, None, math.nan], pa.float64()),
        }
    )
    both = ("a", "b")

    # (1, null) twice is a duplicate; rows 2 and 3 (all missing) are skipped by default
    expected = (False, 2, ("a=1, b=null",))
    assert _one(table, checks.COMPOUND_UNIQUE, native, column_list=both) == expected
    never = _one(table, checks.COMPOUND_UNIQUE, native, column_list=both, ignore_row_if="never")
    assert never == (False, 4, ("a=1, b=null", "a=null, b=null"))
    assert _one(
        table,
        checks.COMPOUND_UNIQUE,
        native,
        column_list=both,
        ignore_row_if="any_value_is_missing",
    ) == (True, 0, ())


@BOTH
def test_zero_and_negative_zero_are_one_value(native: bool) -> None:
    table = pa.table({"x": pa.array([0.0, -0.0, 1.0], pa.float64()), "y": pa.array([1, 1, 1])})

    assert _one(table, checks.UNIQUE, native, column="x") == (False, 2, ("0.0", "-0.0"))
    compound = _one(table, checks.COMPOUND_UNIQUE, native, column_list=("x", "y"))
    assert compound == (False, 2, ("x=0.0, y=1", "x=-0.0, y=1"))


@BOTH
def test_the_sample_comes_from_the_first_twenty_unexpected_rows(native: bool) -> None:
    table = pa.table({"x": pa.array([100] * 20 + [200, 300], pa.int64())})

    assert _one(table, checks.BETWEEN, native, column="x", max_value=10) == (False, 22, ("100",))


@BOTH
def test_with_no_row_to_count_against_an_expectation_holds_whatever_mostly(native: bool) -> None:
    nulls = pa.table({"x": pa.array([None, None], pa.int64())})
    empty = pa.table({"x": pa.array([], pa.int64())})

    assert _one(nulls, checks.BETWEEN, native, column="x", min_value=1) == (True, 0, ())
    assert _one(empty, checks.NOT_NULL, native, column="x", mostly=1.0) == (True, 0, ())
    assert _one(empty, checks.ROW_COUNT, native, min_value=1) == (False, 0, ("observed 0",))


@BOTH
def test_times_read_as_pandas_writes_them(native: bool) -> None:
    paris = pa.array([-2_208_988_800_000] * 2, pa.int64()).cast(pa.timestamp("ms", "Europe/Paris"))
    nanos = pa.array([1, 1, 1_001, 1_001], pa.int64()).cast(pa.timestamp("ns"))
    days = pa.array([0, 0], pa.int32()).cast(pa.date32())

    # Paris kept its local mean time (+00:09:21) until 1911; nanoseconds after microseconds
    assert _one(pa.table({"t": paris}), checks.UNIQUE, native, column="t")[2] == (
        "1900-01-01T00:09:21+00:09:21",
    )
    assert _one(pa.table({"t": nanos}), checks.UNIQUE, native, column="t")[2] == (
        "1970-01-01T00:00:00.000000001",
        "1970-01-01T00:00:00.000001001",
    )
    assert _one(pa.table({"t": days}), checks.UNIQUE, native, column="t")[2] == ("1970-01-01",)


Y20K = 568_971_820_800  # 20000-01-01T00:00:00 in seconds since the epoch


def test_times_beyond_year_9999_are_compared_and_written_where_gx_cannot() -> None:
    """Not copied from GX: on a naive timestamp column beyond datetime's years 1..9999 (pandas
    keeps such columns in seconds, not ns), GX's `between` compares value by value through
    Python datetimes and fails with an error ("year 20000 is out of range"), which would fail
    the file; the native check compares the numbers. (With a time zone, Sluice's own text()
    of GX's sample raises on such a value: GX's path crashes; the native one writes it.)"""
    naive = pa.table({"t": pa.array([Y20K, Y20K, 0], pa.int64()).cast(pa.timestamp("s"))})
    aware = pa.table({"t": naive.column("t").cast(pa.timestamp("s", "UTC"))})
    bounds = {"min_value": dt.datetime(1900, 1, 1), "max_value": dt.datetime(2200, 1, 1)}

    assert _one(naive, checks.BETWEEN, False, column="t", **bounds) == (
        False,
        0,
        ("error: year 20000 is out of range",),
    )
    assert _one(naive, checks.BETWEEN, True, column="t", **bounds) == (
        False,
        2,
        ("20000-01-01T00:00:00",),
    )
    assert _one(aware, checks.UNIQUE, True, column="t")[2] == ("20000-01-01T00:00:00+00:00",)


# --- what goes to GX ----------------------------------------------------------------------------

MIXED = pa.table(
    {
        "i": pa.array([1, 2, 2], pa.int64()),
        "i32": pa.array([1, 2, 3], pa.int32()),
        "s": pa.array(["a", "b", "b"]),
        "dec": pa.array([1, 2, 2], pa.decimal128(10, 2)),
    }
)


@pytest.mark.parametrize(
    ("type_", "kwargs"),
    [
        (checks.NOT_NULL, {"column": "i", "row_condition": "i > 1", "condition_parser": "pandas"}),
        (checks.NOT_NULL, {"column": "i", "mostly": {"$PARAMETER": "share"}}),
        (checks.UNIQUE, {"column": "nope"}),
        (checks.UNIQUE, {"column": "dec"}),
        (checks.BETWEEN, {"column": "i32", "min_value": 0}),  # pandas compares one by one
        (checks.BETWEEN, {"column": "i", "min_value": 0.5}),  # int64 vs float: pandas rounds
        (checks.BETWEEN, {"column": "i", "min_value": 5, "max_value": 1}),
        (checks.BETWEEN, {"column": "s", "min_value": "a"}),
        (checks.BETWEEN, {"column": "i", "min_value": 0, "strict_min": "yes"}),
        (checks.ROW_COUNT, {"min_value": 1.5}),
        (checks.COMPOUND_UNIQUE, {"column_list": ("i", "i")}),
        ("expect_column_values_to_be_in_set", {"column": "s", "value_set": ("a",)}),
    ],
)
def test_other_kwargs_values_and_column_types_go_to_gx(type_: str, kwargs: dict[str, Any]) -> None:
    exp = Expectation(type_, tuple(kwargs.items()))

    assert checks.check_for(exp, MIXED.schema) is None
    assert _outcome(exp, native=True) == _outcome(exp, native=False)


def _outcome(exp: Expectation, native: bool) -> object:
    """The report, or what was raised (GX rejects some of these kwargs, or lacks a value)."""
    try:
        return validate.validate_table(MIXED, [exp], native=native)
    except Exception as exc:  # GX's own exception types
        return type(exc).__name__, str(exc)


def test_what_gx_rejects_is_still_rejected_by_gx() -> None:
    for kwargs in ({"column": "i", "mostly": 1.5}, {"column": "i", "mostly": -0.1}):
        with pytest.raises(ValueError, match="expect_column_values_to_not_be_null"):
            validate.validate_table(MIXED, [Expectation(checks.NOT_NULL, tuple(kwargs.items()))])
    with pytest.raises(ValueError, match="expect_compound_columns_to_be_unique"):
        compound = Expectation(checks.COMPOUND_UNIQUE, (("column_list", ("i",)),))
        validate.validate_table(MIXED, [compound])
    between = Expectation(checks.BETWEEN, (("column", "i"), ("min_value", 5), ("max_value", 1)))
    (result,) = validate.validate_table(MIXED, [between]).results
    assert result.sample == ("error: min_value cannot be greater than max_value",)


def test_an_int_bound_compares_exactly_where_gx_rounds_it_to_a_float() -> None:
    """Not copied from GX: its model turns an int min/max_value of `between` into a float, and
    pandas compares an int64 column without nulls in float64 (2**62 + 1 becomes 2**62) but one
    with nulls (nullable Int64, value by value) exactly: the same value passes or fails by where
    nulls fall in a chunk. The native check compares the int bound exactly, as written."""
    no_null = pa.table({"x": pa.array([2**62 + 1, 0], pa.int64())})
    a_null = pa.table({"x": pa.array([2**62 + 1, None], pa.int64())})
    failed = (False, 1, ("4611686018427387905",))

    assert _one(no_null, checks.BETWEEN, False, column="x", max_value=2**62) == (True, 0, ())
    assert _one(a_null, checks.BETWEEN, False, column="x", max_value=2**62) == failed
    assert _one(no_null, checks.BETWEEN, True, column="x", max_value=2**62) == failed
    assert _one(a_null, checks.BETWEEN, True, column="x", max_value=2**62) == failed
