"""Native checks: the baseline suite's expectation types evaluated with pyarrow.compute and
numpy, giving the results Great Expectations gives, without importing it.

`check_for` turns an expectation into a `Check` when its type is one of `SCOPES` (the five the
baseline uses), its kwargs are among those GX takes for it (row count: min/max_value,
strict_min/max; not null and unique: column, mostly; compound unique: column_list, mostly,
ignore_row_if; between: column, min/max_value, strict_min/max, mostly) with plain values GX
accepts, and its columns are of types compared here exactly as GX's pandas engine compares
them; otherwise it returns None and `sluice.validate.gx` runs it on GX, as before. `evaluate`
gives a `validate_chunks.Part` shaped as `validate_gx` shapes GX's result: success, unexpected
count, the distinct texts of the first PARTIAL_COUNT unexpected values (GX's partial list),
"observed N" for a failed row count, `considered` as GX counts it (element_count -
missing_count), and the unexpected rows' file indices when asked (row-level mode).

What GX does (on pandas, as `validate_gx._to_pandas` converts a table) that may surprise, and
these checks copy:
- NaN in a float column is null (pandas' isnull): not_null counts it, the others skip it.
- not_null counts `mostly` against every row; unique and between against the non-null rows;
  compound unique against the rows `ignore_row_if` keeps (by default: not all key values
  missing). Nothing to count against is a success, whatever `mostly` (GX: vacuously true).
- unique skips nulls, but compound unique takes missing values (null or NaN) as equal to each
  other: (1, null) twice is a duplicate (pandas' DataFrame.duplicated).
- 0.0 and -0.0 are one value for uniqueness (pandas hashes them alike; Arrow does not).
- the sample holds the distinct values among the first 20 unexpected rows only: it can show
  fewer than five values although more distinct ones come later.
Two GX bugs are not copied (tests/unit/test_checks.py shows both): an int bound of `between`
on an int64 column compares exactly (GX rounds it to a float, and compares in float64 where a
chunk has no null), and naive times beyond the years 1..9999 compare (GX errs on them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Expectation, ExpectationResult
from sluice.validate.chunks import (
    PARTIAL_COUNT,
    SAMPLE_SIZE,
    Part,
    Scope,
    clip,
    distinct,
    texts_of,
)

ROW_COUNT = "expect_table_row_count_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
BETWEEN = "expect_column_values_to_be_between"

SCOPES: Mapping[str, Scope] = {
    ROW_COUNT: "count",
    NOT_NULL: "row",
    BETWEEN: "row",
    UNIQUE: "whole",
    COMPOUND_UNIQUE: "whole",
}
"""The types evaluated here, and where the plan runs each (as `validate_chunks.scope` places
its GX class: map expectations row by row, the cross-row ones and the row count whole)."""

_KWARGS: Mapping[str, frozenset[str]] = {
    ROW_COUNT: frozenset({"min_value", "max_value", "strict_min", "strict_max"}),
    NOT_NULL: frozenset({"column", "mostly"}),
    UNIQUE: frozenset({"column", "mostly"}),
    COMPOUND_UNIQUE: frozenset({"column_list", "mostly", "ignore_row_if"}),
    BETWEEN: frozenset({"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"}),
}
_IGNORE_ROW_IF = frozenset({"all_values_are_missing", "any_value_is_missing", "never"})
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True, slots=True)
class Check:
    """An expectation ready to evaluate natively: its columns, `mostly`, and bounds in the
    column's own terms (numbers; times as integers of the column's unit since the epoch,
    dates as days: compared exactly, as pandas compares the values)."""

    expectation: Expectation
    columns: tuple[str, ...] = ()
    mostly: float = 1.0
    low: float | None = None
    high: float | None = None
    strict_low: bool = False
    strict_high: bool = False
    ignore_row_if: str = "all_values_are_missing"

    @property
    def scope(self) -> Scope:
        return SCOPES[self.expectation.type]


def check_for(exp: Expectation, schema: pa.Schema) -> Check | None:
    """The expectation as a Check, or None where GX is to evaluate it.

    Raises ValueError (as `validate_gx` does) for a date/time bound that is no date or time.
    """
    allowed = _KWARGS.get(exp.type)
    kwargs = dict(exp.kwargs)
    if allowed is None or not set(kwargs) <= allowed:
        return None
    mostly = kwargs.get("mostly", 1.0)
    strict_min, strict_max = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
    if not (_is_number(mostly) and 0 <= mostly <= 1):
        return None  # a suite parameter, or a value GX rejects: GX says so
    if not (isinstance(strict_min, bool) and isinstance(strict_max, bool)):
        return None
    base = Check(exp, mostly=float(mostly), strict_low=strict_min, strict_high=strict_max)
    return _BUILDERS[exp.type](base, kwargs, schema)


def _is_number(value: object) -> TypeGuard[float]:
    """An int or float GX takes as a number (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _kind(schema: pa.Schema, name: str) -> str | None:
    """How GX compares a column's values (via pandas), where it is the way checks compare them:
    "int", "float", "bool", "text", "date", "timestamp"; None: GX evaluates (other types,
    float16, a missing or repeated column name)."""
    if schema.get_field_index(name) < 0:
        return None
    t = schema.field(name).type
    kinds = [
        (pa.types.is_integer, "int"),
        (lambda t: t in (pa.float32(), pa.float64()), "float"),
        (pa.types.is_boolean, "bool"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "text"),
        (pa.types.is_date32, "date"),
        (pa.types.is_timestamp, "timestamp"),
    ]
    return next((kind for test, kind in kinds if test(t)), None)


def _for_column(base: Check, kwargs: Mapping[str, Any], schema: pa.Schema) -> Check | None:
    column = kwargs.get("column")
    if not isinstance(column, str) or _kind(schema, column) is None:
        return None
    return replace(base, columns=(column,))


def _for_compound(base: Check, kwargs: Mapping[str, Any], schema: pa.Schema) -> Check | None:
    columns = kwargs.get("column_list")
    ignore = kwargs.get("ignore_row_if", "all_values_are_missing")
    if not isinstance(columns, tuple | list) or ignore not in _IGNORE_ROW_IF:
        return None
    if len(columns) < 2 or len(set(columns)) < len(columns):
        return None  # GX rejects fewer than two; a repeated name: GX's own way
    names = tuple(c for c in columns if isinstance(c, str) and _kind(schema, c))
    if len(names) < len(columns):
        return None
    return replace(base, columns=names, ignore_row_if=ignore)


def _for_row_count(base: Check, kwargs: Mapping[str, Any], schema: pa.Schema) -> Check | None:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if not all(v is None or (_is_number(v) and isinstance(v, int)) for v in (low, high)):
        return None
    if low is not None and high is not None and low > high:
        return None  # GX rejects it
    return replace(base, low=low, high=high)


def _for_between(base: Check, kwargs: Mapping[str, Any], schema: pa.Schema) -> Check | None:
    column = kwargs.get("column")
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if not isinstance(column, str) or _kind(schema, column) is None:
        return None
    if low is None and high is None:
        return None
    arrow_type = schema.field(column).type
    low, high = (None if v is None else bound(v, arrow_type, BETWEEN) for v in (low, high))
    if low is not None and high is not None and not _ordered(low, high):
        return None  # GX's metric errs on it (or GX rejects the bounds): GX says so
    # v >= low: v >= ceil(low); v > low: v > floor(low); v <= high: floor; v < high: ceil
    units = (
        _units(low, arrow_type, not base.strict_low),
        _units(high, arrow_type, base.strict_high),
    )
    if any(u is None and v is not None for u, v in zip(units, (low, high), strict=True)):
        return None
    return replace(base, columns=(column,), low=units[0], high=units[1])


def _ordered(low: Any, high: Any) -> bool:
    try:
        return bool(low <= high)
    except TypeError:
        return False


def _units(value: object, arrow_type: pa.DataType, ceil: bool) -> float | None:
    """A bound as a number the column's values (as numbers: `_numbers`) compare with exactly,
    or None where GX is to compare: another kind of bound, or a column type not handled here.
    A time that falls between two of the column's units is rounded up (`ceil`) or down."""
    if pa.types.is_timestamp(arrow_type):
        if type(value) is not dt.datetime:  # not a pandas.Timestamp either: its nanoseconds
            return None
        micros = (value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)) // _US
        if arrow_type.unit == "ns":
            return micros * 1000
        per = _US_PER_UNIT[arrow_type.unit]
        return -(-micros // per) if ceil else micros // per
    if pa.types.is_date32(arrow_type):
        return (value - _EPOCH.date()).days if type(value) is dt.date else None
    if not _is_number(value):
        return None
    if arrow_type == pa.int64():
        # Not copied from GX: its model makes an int bound a float, and pandas compares an
        # int64 chunk without nulls in float64 (one with nulls exactly): beyond 2**53 a value
        # passes or fails by rounding, and by where nulls fall. Here: exactly, as written.
        # A float bound goes to GX.
        return value if isinstance(value, int) else None
    if arrow_type == pa.float64():
        try:
            return float(value)  # as numpy takes a Python int or float (inf included)
        except OverflowError:  # an int beyond any float: GX says what it makes of it
            return None
    return None  # other widths: pandas compares their values one by one in Python


_BUILDERS: Mapping[str, Callable[[Check, Mapping[str, Any], pa.Schema], Check | None]] = {
    ROW_COUNT: _for_row_count,
    NOT_NULL: _for_column,
    UNIQUE: _for_column,
    COMPOUND_UNIQUE: _for_compound,
    BETWEEN: _for_between,
}


def bound(value: object, arrow_type: pa.DataType, type_name: str) -> object:
    """A min/max bound as the kind of value a column of this type compares with (both GX's
    pandas values and these checks): a date column's as a date, a timestamp column's as a
    datetime, aware (naive means UTC) for a column with a time zone, naive UTC for one without.
    Bounds of other columns, and suite parameters (dicts), are returned as they are."""
    is_timestamp = bool(pa.types.is_timestamp(arrow_type))
    if not (is_timestamp or pa.types.is_date(arrow_type)) or isinstance(value, dict):
        return value
    when: dt.date
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{type_name}: bound {value!r} is not an ISO date/time") from exc
    elif isinstance(value, dt.date):  # datetime included (and pandas.Timestamp)
        when = value
    else:
        raise ValueError(f"{type_name}: bound {value!r} does not compare with dates/times")
    if not is_timestamp:  # date32/date64 -> pandas object column of datetime.date
        return when.date() if isinstance(when, dt.datetime) else when
    if not isinstance(when, dt.datetime):
        when = dt.datetime.combine(when, dt.time())
    if arrow_type.tz is not None:
        return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
    return when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)


# --- evaluation ------------------------------------------------------------------------------


def evaluate(check: Check, table: pa.Table, first_row: int = 0, collect: bool = False) -> Part:
    """The check on the table (whose first row is the file's row `first_row`, 0-based), as GX's
    result would be; with `collect`, the Part carries the unexpected rows' file indices."""
    if check.expectation.type == ROW_COUNT:
        return _row_count_part(check, table.num_rows)
    positions, considered = _FINDERS[check.expectation.type](check, table)
    count = len(positions)
    # GX: (considered - unexpected) / considered >= mostly, vacuously true on no row
    success = considered == 0 or (considered - count) / considered >= check.mostly
    sample = _sample(check, table, positions[:PARTIAL_COUNT])
    rows = positions + first_row if collect else None
    return Part(
        ExpectationResult(check.expectation, success, count, sample), considered, False, rows
    )


def _row_count_part(check: Check, rows: int) -> Part:
    above = check.low is None or (rows > check.low if check.strict_low else rows >= check.low)
    below = check.high is None or (rows < check.high if check.strict_high else rows <= check.high)
    success = above and below
    sample = () if success else (f"observed {rows}",)
    return Part(ExpectationResult(check.expectation, success, 0, sample))  # GX: no counts


Found = tuple[np.ndarray, int]  # unexpected rows (positions in the table, ascending), considered


def _not_null(check: Check, table: pa.Table) -> Found:
    missing = _missing(table.column(check.columns[0]))
    return np.flatnonzero(missing), table.num_rows  # GX: missing_count unset, all rows count


def _unique(check: Check, table: pa.Table) -> Found:
    column = table.column(check.columns[0])
    present = ~_missing(column)
    codes = _codes(column, ~present)[present]
    return np.flatnonzero(present)[_repeated(codes)], int(present.sum())


def _compound(check: Check, table: pa.Table) -> Found:
    columns = [table.column(name) for name in check.columns]
    missing = [_missing(column) for column in columns]
    keep = np.ones(table.num_rows, dtype=bool)
    if check.ignore_row_if == "all_values_are_missing":
        keep = ~np.logical_and.reduce(missing)
    elif check.ignore_row_if == "any_value_is_missing":
        keep = ~np.logical_or.reduce(missing)
    key = _combined([_codes(c, m) for c, m in zip(columns, missing, strict=True)])
    return np.flatnonzero(keep)[_repeated(key[keep])], int(keep.sum())


def _between(check: Check, table: pa.Table) -> Found:
    column = table.column(check.columns[0])
    present = ~_missing(column)
    values = _numbers(column.filter(pa.array(present)))
    ok = np.ones(len(values), dtype=bool)
    if check.low is not None:
        ok &= values > check.low if check.strict_low else values >= check.low
    if check.high is not None:
        ok &= values < check.high if check.strict_high else values <= check.high
    return np.flatnonzero(present)[~ok], int(present.sum())


_FINDERS: Mapping[str, Callable[[Check, pa.Table], Found]] = {
    NOT_NULL: _not_null,
    UNIQUE: _unique,
    COMPOUND_UNIQUE: _compound,
    BETWEEN: _between,
}


# --- values as pandas sees them ----------------------------------------------------------------


def _missing(column: pa.ChunkedArray) -> np.ndarray:
    """Where a value is missing as pandas' isnull says: null, or NaN in a float column."""
    nan_is_null = pa.types.is_floating(column.type)
    return np.asarray(pc.is_null(column, nan_is_null=nan_is_null).to_numpy(), dtype=bool)


def _codes(column: pa.ChunkedArray, missing: np.ndarray) -> np.ndarray:
    """A code per row, equal where pandas takes the values as equal: one code for all missing
    values (null or NaN, as DataFrame.duplicated has it), one for 0.0 and -0.0."""
    array = column.combine_chunks()
    if pa.types.is_floating(array.type):
        array = pc.add(array, pa.scalar(0.0, array.type))  # -0.0 + 0.0 is 0.0
    encoded = pc.dictionary_encode(array)
    none = len(encoded.dictionary)
    codes = np.array(pc.fill_null(encoded.indices, none).to_numpy(), dtype=np.int64)
    codes[missing] = none
    return codes


def _combined(codes: Sequence[np.ndarray]) -> np.ndarray:
    """One code per row for the tuple of several columns' codes (kept dense: no overflow)."""
    key = codes[0]
    for more in codes[1:]:
        key = key * (int(more.max(initial=0)) + 1) + more
        key = np.unique(key, return_inverse=True)[1].reshape(-1)
    return key


def _repeated(codes: np.ndarray) -> np.ndarray:
    """Where a code occurs more than once (pandas' duplicated(keep=False))."""
    return np.asarray(np.bincount(codes)[codes] > 1, dtype=bool)


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    """A column without missing values as numbers `_units` bounds compare with exactly."""
    if pa.types.is_date32(column.type):
        column = pc.cast(column, pa.int32())  # days since the epoch
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.int64())  # units since the epoch
    return np.asarray(column.to_numpy())


# --- unexpected values as text --------------------------------------------------------------


def _sample(check: Check, table: pa.Table, positions: np.ndarray) -> tuple[str, ...]:
    """The distinct texts of the unexpected values at these positions, in order."""
    if not len(positions):
        return ()
    taken = table.select(list(check.columns)).take(pa.array(positions))
    texts = [texts_of(taken.column(name)) for name in check.columns]
    if check.expectation.type != COMPOUND_UNIQUE:
        return distinct(texts[0], SAMPLE_SIZE)
    rows = zip(*texts, strict=True)  # a row as GX's dict of it reads: "a=1, b=null"
    names = check.columns
    joined = (clip(", ".join(f"{c}={t}" for c, t in zip(names, r, strict=True))) for r in rows)
    return distinct(joined, SAMPLE_SIZE)
