"""Bounded-memory validation of a staged file: row-local expectations chunk by chunk, the rest
once on the whole file, projected onto the columns they read.

Great Expectations validates a pandas DataFrame it holds whole, so `sluice.validate.run` never
gives it the whole file. `plan` splits the suite by each expectation's `Scope`, which `scope`
tells from its GX class (and `checks.SCOPES` gives, the same, for the types evaluated
natively):

- row-local ("row"): GX map expectations (ColumnMap, ColumnPairMap, MulticolumnMap) whose
  verdict on a row depends on that row alone, and the schema checks that read no row at all
  (column count, columns, column types). They run on chunks of `rows` rows as the staged
  batches stream past, and `merge` sums their chunk results. Memory: one chunk, whatever the
  file's size.
- whole-file ("whole", "count"): everything else (table row count, column mean/min/max/distinct
  values, ...) and the map expectations of `CROSS_ROW`, which compare a row with others. They
  run once after the stream, on a table of only the columns their kwargs name (the row count,
  "count", on none); expectations naming the same columns share one run. Memory grows with the
  file, but only by those columns: for the baseline suite that is the declared key.

`iter_typed` reads the staged file batch by batch; GX stays in `sluice.validate.gx`, and
`sluice.validate` passes the scopes to `plan` and an `Evaluate` function (native checks and
GX's) to `validate_batches`. Samples of unexpected values are text as GX's pandas values read
(`text`; `texts_of` for an Arrow column), the first distinct ones (`distinct`), in a chunk's
result as in a merged one.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sluice import faults
from sluice.contracts import (
    Expectation,
    ExpectationResult,
    InferredSchema,
    Staged,
    ValidationReport,
)

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

CROSS_ROW = (
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_decreasing",
    "expect_column_value_z_scores_to_be_less_than",
    "expect_column_values_to_not_be_outliers",
)
"""GX map expectations (and their subclasses) whose verdict on a row depends on other rows: a
duplicate elsewhere, the previous row, the column's mean and spread or its quartiles. Chunk by
chunk they would miss a duplicate split across chunks; they run on the whole file instead.
(expect_select_column_values_to_be_unique_within_record compares columns of one row: row-local.)
"""

TEXT_LIMIT = 200  # longest text kept for one sample value or error message
SAMPLE_SIZE = 5  # unexpected values kept per result, distinct, as text
PARTIAL_COUNT = 20  # unexpected values GX collects per expectation (deduplicated to SAMPLE_SIZE)
_SCHEMA_METRICS = frozenset({"table.columns", "table.column_count", "table.column_types"})
_EPOCH = dt.datetime(1970, 1, 1)
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
_CYCLE_DAYS = 146_097  # days in 400 Gregorian years: the calendar repeats after them
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01, 9999-12-31 in days since the epoch
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMNS_KWARGS = ("column_list", "column_set")

Scope = Literal["row", "whole", "count"]
"""Where an expectation runs: "row" row-local, chunk by chunk; "whole" once on the whole file's
projection onto the columns it names; "count" once on the whole file's rows, no column read."""

Evaluate = Callable[["pa.Table", tuple[int, ...], int], Mapping[int, "Part"]]
"""Runs the expectations at these suite indices on a table whose first row is the file's row
`first_row` (0-based): their results by index."""


@dataclass(frozen=True, slots=True)
class Part:
    """One expectation's result on one chunk, with what merging the chunks needs."""

    result: ExpectationResult
    considered: int = 0  # rows GX's `mostly` counts against: element_count - missing_count
    error: bool = False  # GX could not evaluate it (the result says why)
    rows: Any = None  # numpy int64: the unexpected rows' 0-based file indices, where collected


@dataclass(frozen=True, slots=True)
class Validated:
    """The report, and the unexpected rows (0-based file indices) of the expectations whose
    rows were collected (map expectations only: an aggregate has no rows)."""

    report: ValidationReport
    rows: Mapping[int, Any]


@dataclass(frozen=True, slots=True)
class Group:
    """Whole-file expectations that read the same columns (None: every column of the file)."""

    columns: tuple[str, ...] | None
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Which expectations (suite indices) run chunk by chunk and which on the whole file."""

    chunked: tuple[int, ...]
    whole: tuple[Group, ...] = ()

    def kept(self, names: Sequence[str], start: int = 0) -> list[str]:
        """The columns (of `names`, in order) that the whole-file groups from `start` on read."""
        groups = self.whole[start:]
        if any(g.columns is None for g in groups):
            return list(names)
        wanted = {c for g in groups for c in g.columns or ()}
        return [n for n in names if n in wanted]


def plan(expectations: Sequence[Expectation], scopes: Sequence[Scope]) -> Plan:
    """Split a suite by where each expectation runs (`scopes`, same order as `expectations`)."""
    chunked: list[int] = []
    groups: dict[tuple[str, ...] | None, list[int]] = {}
    for index, (exp, where) in enumerate(zip(expectations, scopes, strict=True)):
        if where == "row":
            chunked.append(index)
        else:
            groups.setdefault(_projection(exp, where), []).append(index)
    return Plan(tuple(chunked), tuple(Group(c, tuple(ix)) for c, ix in groups.items()))


def scope(cls: type, map_bases: tuple[type, ...], cross_row: tuple[type, ...]) -> Scope:
    """Where a GX expectation class runs: `map_bases` are GX's map expectation base classes,
    `cross_row` the classes of `CROSS_ROW`."""
    if issubclass(cls, map_bases):
        return "whole" if issubclass(cls, cross_row) else "row"
    metrics = _metrics(cls)
    if metrics and set(metrics) <= _SCHEMA_METRICS:
        return "row"
    return "count" if metrics == ("table.row_count",) else "whole"


def _metrics(cls: type) -> tuple[str, ...]:
    """The metrics a GX expectation class declares it reads (table.row_count, column.mean...)."""
    declared = getattr(cls, "metric_dependencies", ())
    return tuple(str(m) for m in declared) if isinstance(declared, tuple | list) else ()


def _projection(exp: Expectation, where: Scope) -> tuple[str, ...] | None:
    """The columns a whole-file expectation reads: those its kwargs name, none for a row count;
    all (None) where that cannot be told: a row_condition (free text) or other table metrics."""
    kwargs = dict(exp.kwargs)
    if kwargs.get("row_condition"):
        return None
    columns = referenced(kwargs)
    if columns:
        return columns
    return () if where == "count" else None


def referenced(kwargs: Mapping[str, object]) -> tuple[str, ...]:
    """The column names an expectation's kwargs name (column, column_A/B, column_list/set)."""
    names = {value for key in _COLUMN_KWARGS if isinstance(value := kwargs.get(key), str)}
    for key in _COLUMNS_KWARGS:
        values = kwargs.get(key)
        if isinstance(values, list | tuple | set | frozenset):
            names.update(v for v in values if isinstance(v, str))
    return tuple(sorted(names))


# --- running a plan over a stream of batches ---------------------------------------------------


def validate_batches(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    steps: Plan,
    evaluate: Evaluate,
    *,
    rows: int,
    sample_size: int,
) -> Validated:
    """Run the plan over the batches in one pass: results in suite order, rows = all rows.

    Row-local expectations run on each chunk of `rows` rows; the columns the whole-file groups
    read are kept as the batches pass, then each group runs on its projection (a table of no
    columns keeps the row count), and columns no later group reads are dropped.
    """
    pa_mod: Any = importlib.import_module("pyarrow")
    names = steps.kept(schema.names)
    kept: list[Any] = []
    parts: dict[int, list[Part]] = {index: [] for index in steps.chunked}
    total = 0
    for chunk in iter_chunks(_keeping(batches, names, kept), schema, rows):
        if steps.chunked:
            for index, part in evaluate(chunk, steps.chunked, total).items():
                parts[index].append(part)
        total += chunk.num_rows
        faults.point("validate")
    results = {index: merge(chunk_parts, sample_size) for index, chunk_parts in parts.items()}
    found = {i: r for i, chunk_parts in parts.items() if (r := merge_rows(chunk_parts)) is not None}

    table = pa_mod.Table.from_batches(kept, pa_mod.schema([schema.field(n) for n in names]))
    kept.clear()
    for number, group in enumerate(steps.whole):
        columns = table.column_names if group.columns is None else group.columns
        projection = table.select([c for c in columns if c in table.column_names])
        table = table.select(steps.kept(table.column_names, number + 1))  # what is still read
        for i, part in evaluate(projection, group.indices, 0).items():
            results[i] = part.result
            if part.rows is not None:
                found[i] = part.rows
    report = ValidationReport(rows=total, results=tuple(results[i] for i in sorted(results)))
    return Validated(report, found)


def merge_rows(parts: Sequence[Part]) -> Any:
    """The chunks' unexpected rows as one array, or None where a chunk has none collected."""
    if not parts or any(p.rows is None for p in parts):
        return None
    np: Any = importlib.import_module("numpy")
    return np.concatenate([p.rows for p in parts])


def _keeping(batches: Iterable[Any], names: list[str], kept: list[Any]) -> Iterator[Any]:
    """The batches, unchanged, keeping the `names` columns of each in `kept` as they pass."""
    for batch in batches:
        kept.append(batch.select(names))
        yield batch


def iter_typed(
    raw: Staged, schema: InferredSchema, time_zone: str, batch_rows: int
) -> Iterator[Any]:
    """The raw (text) batches cast to their inferred types: at least one (empty) batch."""
    pa_mod: Any = importlib.import_module("pyarrow")
    from sluice.schema.casts import convert_columns
    from sluice.staging import iter_batches

    names = [col.name for col in schema.columns]

    def typed(batch: Any) -> Any:
        arrays = convert_columns(batch, schema.columns, time_zone)
        return pa_mod.RecordBatch.from_arrays(arrays, names=names)

    empty = True
    for batch in iter_batches(raw, batch_rows):
        empty = False
        yield typed(batch)
    if empty:  # an empty file still has typed columns
        strings = [pa_mod.array([], pa_mod.string()) for _ in names]
        yield typed(pa_mod.record_batch(strings, names=names))


def iter_chunks(batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int) -> Iterator[Any]:
    """Tables of `rows` rows (the last one shorter) concatenated from the batches, zero-copy.

    At least one table: an empty one (with the schema's columns) when there are no rows.
    """
    pa_mod: Any = importlib.import_module("pyarrow")
    rows = max(rows, 1)
    pending: list[Any] = []
    count = 0
    emitted = False
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa_mod.Table.from_batches(pending, schema)
            yield table.slice(0, rows)
            emitted = True
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count or not emitted:
        yield pa_mod.Table.from_batches(pending, schema)


def merge(parts: Sequence[Part], sample_size: int) -> ExpectationResult:
    """One expectation's chunk results as one result on all their rows.

    An error in any chunk is the result. Otherwise unexpected counts add up, the sample is the
    first `sample_size` distinct values over the chunks in order, and success is every chunk's
    success, except with a numeric `mostly` below 1: then GX's rule on the totals (the share of
    considered rows that are expected is at least `mostly`; true when no row is considered).
    """
    for part in parts:
        if part.error:
            return part.result
    exp = parts[0].result.expectation
    unexpected = sum(p.result.unexpected_count for p in parts)
    mostly = dict(exp.kwargs).get("mostly")
    if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
        considered = sum(p.considered for p in parts)
        success = considered == 0 or (considered - unexpected) / considered >= mostly
    else:
        success = all(p.result.success for p in parts)
    sample = distinct((s for p in parts for s in p.result.sample), sample_size)
    return ExpectationResult(exp, success, unexpected, sample)


def distinct(texts: Iterable[str], limit: int) -> tuple[str, ...]:
    """The first `limit` distinct texts, in order."""
    seen: dict[str, None] = {}
    for item in texts:
        if len(seen) == limit:
            break
        seen.setdefault(item, None)
    return tuple(seen)


# --- unexpected values as text -----------------------------------------------------------------


def text(value: object) -> str:
    """One unexpected value as text: ISO for dates/times, "null" for any missing value."""
    if isinstance(value, dict):  # a row of a multi-column expectation
        return clip(", ".join(f"{k}={text(v)}" for k, v in value.items()))
    if isinstance(value, list | tuple):
        return clip("(" + ", ".join(text(v) for v in value) + ")")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if type(value).__module__.startswith(("pandas", "numpy")):
        pd: Any = importlib.import_module("pandas")
        if pd.isna(value):  # NaT, NA, numpy nan
            return "null"
        if isinstance(value, pd.Timestamp | dt.date):
            return str(value.isoformat())
        if type(value).__name__ == "datetime64":
            return str(pd.Timestamp(value).isoformat())
        if hasattr(value, "item"):  # numpy scalar -> Python scalar
            value = value.item()
    if isinstance(value, dt.date):  # datetime included
        return value.isoformat()
    return clip(str(value))


def clip(value: str) -> str:
    """At most TEXT_LIMIT characters (an ellipsis marks a cut)."""
    return value if len(value) <= TEXT_LIMIT else value[: TEXT_LIMIT - 1] + "…"


def texts_of(column: pa.ChunkedArray) -> list[str]:
    """An Arrow column's values as `text` writes the pandas values GX reads of them."""
    pa_mod: Any = importlib.import_module("pyarrow")
    if not pa_mod.types.is_timestamp(column.type):
        return [text(value) for value in column.to_pylist()]
    unit, tz = column.type.unit, column.type.tz
    zone = _zone(tz) if tz is not None else None
    values = column.cast(pa_mod.int64()).to_pylist()
    return ["null" if v is None else _iso(v, unit, zone) for v in values]


def _iso(value: int, unit: str, zone: dt.tzinfo | None) -> str:
    """A timestamp as pandas.Timestamp.isoformat() writes it: nanoseconds after the
    microseconds where there are any; years beyond datetime's 1..9999 too."""
    micros, nanos = divmod(value, 1000) if unit == "ns" else (value * _US_PER_UNIT[unit], 0)
    days, rest = divmod(micros, 86_400_000_000)
    cycles = 0  # 400-year cycles to shift a day beyond datetime's years 1..9999 into them
    if not _FIRST_DAY < days < _LAST_DAY:
        cycles = (days - 10_957) // _CYCLE_DAYS  # from 2000-01-01
    when = _EPOCH + dt.timedelta(days=days - cycles * _CYCLE_DAYS, microseconds=rest)
    if zone is not None:
        when = when.replace(tzinfo=dt.UTC).astimezone(zone)
    iso = when.isoformat()
    if cycles:  # as pandas does: the year written apart from a datetime in range
        iso = f"{when.year + 400 * cycles:04d}-" + iso.split("-", 1)[1]
    if not nanos:
        return iso
    head, tail = (iso[:-6], iso[-6:]) if zone is not None else (iso, "")
    return head + (f"{nanos:03d}" if when.microsecond else f".{nanos:09d}") + tail


@functools.cache
def _zone(tz: str) -> dt.tzinfo | None:
    """The tzinfo pyarrow (and so pandas) reads an Arrow time zone name or offset as."""
    pa_mod: Any = importlib.import_module("pyarrow")
    aware = pa_mod.scalar(0, pa_mod.timestamp("s", tz)).as_py()
    return aware.tzinfo if isinstance(aware, dt.datetime) else None
