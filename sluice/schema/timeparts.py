"""A time made of several columns: year, month, day (hour, minute, second) parts, or a date column
beside a time-of-day column, as NSRDB, TMY3 and MIDC files carry it.

`plan` decides, from the inferred columns and what inference saw of their values, whether the
file gets a derived time column (`time`, a timestamptz placed first) and from which columns:
the dataset's `time_from` rule, else the common layouts when the file has no timestamp column
of its own. The parts stay columns of their own; the derived column has `Column.parts`, and
`compose` makes it from any batch of the staged file (`casts.convert_columns` calls it),
so profile, validate and load see it like a column of the file.

The time is the date plus an offset from its midnight: `24:00` is the next day's midnight, as
TMY3 writes the last hour of a day. Parts that make no time (month 13, 30 February, 25:00, an
empty part) give a null time, which the dataset's `on_missing_time` rule refuses or sets aside.
A date written `01/02/2024` is read month first or day first by the `day_first` rule, else by
what the column's name says (`Date (MM/DD/YYYY)`), else by its values (a first number above 12
means day first); when nothing tells, the layout is not detected and the note says which rule
would load it. The time is local time in the dataset's `time_zone`, converted to UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, Guess
from sluice.errors import SchemaConflict

DERIVED = "time"
PARTS = ("year", "month", "day", "hour", "minute", "second")
_NAMES = {
    "year": {"year", "yr", "yyyy"},
    "month": {"month", "mon", "mo"},
    "day": {"day", "dy", "dd", "mday"},
    "hour": {"hour", "hr", "hh"},
    "minute": {"minute", "min", "mi"},
    "second": {"second", "sec", "ss"},
}
_RANGES: dict[str, tuple[float, float]] = {
    "year": (1, 9999),
    "month": (1, 12),
    "day": (1, 31),
    "hour": (0, 24),
    "minute": (0, 59),
    "second": (0, 59.999999),
}
_YEAR_LAST = r"^\s*(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<c>\d{4})\s*$"
_YEAR_FIRST = r"^\s*(?P<a>\d{4})[/.-](?P<b>\d{1,2})[/.-](?P<c>\d{1,2})\s*$"
_CLOCK = r"^\s*(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}(?:\.\d{1,6})?))?\s*$"
_NUMBER = r"^\s*\d+(\.\d+)?\s*$"
_SAMPLE = 64  # values of a batch a column's shape is first tried on
_MDY_NAME = re.compile(r"\bm{1,2}[/.-]d{1,2}\b", re.IGNORECASE)
_DMY_NAME = re.compile(r"\bd{1,2}[/.-]m{1,2}\b", re.IGNORECASE)
_US_PER = {"day": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000, "second": 1e6}


@dataclass(slots=True)
class Shape:
    """What one text column's values looked like: dates with the year last (and how large
    their first and second numbers got), times of day (`24:00` allowed)."""

    dates: bool = True
    clock: bool = True
    first: int = 0
    second: int = 0
    seen: int = 0  # values looked at (a column never filled shows no shape)


@dataclass(slots=True)
class Shapes:
    """The shapes of a file's text columns, batch by batch; a column leaves once refuted."""

    columns: dict[str, Shape] = field(default_factory=dict)
    started: bool = False

    def add(self, batch: pa.RecordBatch, text: list[str]) -> None:
        names = text if not self.started else list(self.columns)
        self.started = True
        for name in names:
            shape = self.columns.setdefault(name, Shape())
            _observe(shape, batch.column(name))
            if not (shape.dates or shape.clock):
                del self.columns[name]


def _observe(shape: Shape, arr: pa.Array) -> None:
    values = arr.drop_null()
    if not len(values):
        return
    shape.seen += len(values)
    sample = values.slice(0, _SAMPLE)  # most columns are refuted here, cheaply
    if shape.dates:
        shape.dates = _all(sample, _YEAR_LAST) and _all(values, _YEAR_LAST)
    if shape.dates:
        parts = pc.extract_regex(values, _YEAR_LAST)
        for attr, index in (("first", 0), ("second", 1)):
            high = pc.max(pc.cast(pc.struct_field(parts, index), pa.int64())).as_py() or 0
            setattr(shape, attr, max(getattr(shape, attr), high))
    if shape.clock:
        shape.clock = _all(sample, _CLOCK) and _all(values, _CLOCK)
    if shape.clock:
        hours = pc.cast(pc.struct_field(pc.extract_regex(values, _CLOCK), 0), pa.int64())
        shape.clock = (pc.max(hours).as_py() or 0) <= 24


def _all(values: pa.Array, pattern: str) -> bool:
    return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


@dataclass(frozen=True, slots=True)
class Plan:
    """The derived time column (None: none), the guess to report, and why a layout that looked
    like one was not taken (for the note)."""

    column: Column | None = None
    guess: Guess | None = None
    problem: str = ""


def plan(
    columns: tuple[Column, ...],
    time_from: tuple[str, ...] | None,
    day_first: bool | None,
    shapes: Shapes,
    ranges: dict[str, tuple[float | None, float | None]],
) -> Plan:
    """The time column made of parts, from the rule or detected (see the module docstring)."""
    if time_from == ():
        return Plan()
    if time_from is not None:
        return _declared(columns, time_from, day_first, shapes)
    if any(c.pg_type == "timestamptz" and not c.parts for c in columns):
        return Plan()  # the file has a time column of its own
    found = _parts_layout(columns, ranges) or _date_time_layout(columns, shapes)
    if found is None:
        return Plan()
    used, kind = found
    return _derived(columns, used, kind, day_first, shapes, detected=True)


def _declared(
    columns: tuple[Column, ...], wanted: tuple[str, ...], day_first: bool | None, shapes: Shapes
) -> Plan:
    used = []
    for name in wanted:
        col = next((c for c in columns if name in (c.source, c.name)), None)
        if col is None:
            raise SchemaConflict(
                f"time_from names {name!r}, which is not in the file",
                hint=f"columns are {[c.source for c in columns]}; fix time_from in datasets.yaml",
            )
        used.append(col)
    kind = "date_time" if len(used) == 2 else "parts"
    result = _derived(columns, tuple(used), kind, day_first, shapes, detected=False)
    if result.column is None:
        raise SchemaConflict(result.problem, hint="set day_first in datasets.yaml")
    return result


def _parts_layout(
    columns: tuple[Column, ...], ranges: dict[str, tuple[float | None, float | None]]
) -> tuple[tuple[Column, ...], str] | None:
    """year, month, day columns (then hour, minute, second) of whole numbers in range."""
    used: list[Column] = []
    for part in PARTS:
        found = [c for c in columns if c.name in _NAMES[part]]
        if len(found) != 1 or not _in_range(found[0], part, ranges):
            break
        used.append(found[0])
    return (tuple(used), "parts") if len(used) >= 3 else None


def _in_range(col: Column, part: str, ranges: dict[str, tuple[float | None, float | None]]) -> bool:
    if col.pg_type != "bigint" and not (part == "second" and col.pg_type == "double precision"):
        return False
    low, high = ranges.get(col.name, (None, None))
    least, most = _RANGES[part]
    return low is not None and high is not None and least <= low and high <= most


def _date_time_layout(
    columns: tuple[Column, ...], shapes: Shapes
) -> tuple[tuple[Column, ...], str] | None:
    """A date column followed by a time-of-day column."""
    for date, clock in zip(columns, columns[1:], strict=False):
        is_date = date.pg_type == "date" or _shape(shapes, date).dates
        is_clock = clock.pg_type == "time" or _shape(shapes, clock).clock
        if is_date and is_clock and date.pg_type != "time":
            return (date, clock), "date_time"
    return None


def _shape(shapes: Shapes, col: Column) -> Shape:
    shape = shapes.columns.get(col.name)
    return shape if shape is not None and shape.seen else Shape(dates=False, clock=False)


def _derived(
    columns: tuple[Column, ...],
    used: tuple[Column, ...],
    kind: str,
    day_first: bool | None,
    shapes: Shapes,
    *,
    detected: bool,
) -> Plan:
    names = ", ".join(c.source for c in used)
    text_format = "parts"
    if kind == "date_time":
        order, why = _order(used[0], day_first, shapes)
        if order is None:
            return Plan(problem=f"{names} could make the time column, but {why}: set "
                        f"`time_from: [{names}]` and `day_first: true` or `false`")  # fmt: skip
        text_format = f"date_time_{order}"
    name = _free_name(columns)
    derived = Column(
        source=name,
        name=name,
        pg_type="timestamptz",
        nullable=any(c.nullable for c in used),
        text_format=text_format,
        parts=tuple(c.name for c in used),
    )
    rule = f"time_from: [{names}]" if detected else "time_from (in force)"
    return Plan(derived, Guess("time", f"{name} from {names}", rule, notable=True))


def _order(date: Column, day_first: bool | None, shapes: Shapes) -> tuple[str | None, str]:
    """ymd, mdy or dmy; None with the reason when nothing tells month-first from day-first."""
    shape = shapes.columns.get(date.name)
    if date.pg_type == "date" or shape is None or not shape.dates:
        return "ymd", ""
    if day_first is not None:
        return ("dmy" if day_first else "mdy"), ""
    said = (
        "mdy" if _MDY_NAME.search(date.source) else "dmy" if _DMY_NAME.search(date.source) else None
    )
    seen = "dmy" if shape.first > 12 else "mdy" if shape.second > 12 else None
    if said and seen and said != seen:
        return None, f"{date.source!r} says {said} but holds {seen} dates"
    return (said or seen), f"{date.source!r} holds dates that read either month or day first"


def _free_name(columns: tuple[Column, ...]) -> str:
    taken = {c.name for c in columns}
    return next(n for n in (DERIVED, "time_of_row", "derived_time", "time_1") if n not in taken)


# --- making the time from a batch ----------------------------------------------------------


def compose(batch: pa.RecordBatch, col: Column, time_zone: str) -> pa.Array:
    """The derived time of each row of the batch, UTC; null where the parts make no time."""
    from sluice.schema.casts import local_to_utc

    arrays = [batch.column(name) for name in col.parts]
    if col.text_format == "parts":
        numbers = [_number(a) for a in arrays]
        days = _ymd(*numbers[:3])
        offset = _offset(dict(zip(PARTS[3:], numbers[3:], strict=False)), batch.num_rows)
    else:
        days = _date(arrays[0], col.text_format.removeprefix("date_time_"))
        offset = _clock(arrays[1])
    micros = pc.cast(offset, pa.duration("us"))
    return local_to_utc(pc.add(pc.cast(days, pa.timestamp("us")), micros), time_zone)


def _number(arr: pa.Array) -> pa.Array:
    """Whole or decimal numbers as float64 (null where the text is none)."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        valid = pc.match_substring_regex(arr, _NUMBER)
        arr = pc.utf8_trim_whitespace(pc.if_else(valid, arr, pa.scalar(None, arr.type)))
    return pc.cast(arr, pa.float64())


def _ymd(year: pa.Array, month: pa.Array, day: pa.Array) -> pa.Array:
    """The dates (timestamp[s]) of whole-number parts in range; null otherwise."""
    ok = pc.and_(_whole(year, "year"), pc.and_(_whole(month, "month"), _whole(day, "day")))
    text = [pc.cast(pc.cast(p, pa.int64()), pa.string()) for p in (year, month, day)]
    joined = pc.if_else(ok, pc.binary_join_element_wise(*text, "-"), pa.scalar(None, pa.string()))
    return _calendar(joined, month, day)


def _calendar(text: pa.Array, month: pa.Array, day: pa.Array) -> pa.Array:
    """`Y-M-D` text as dates; 30 February (which strptime rolls over) is null."""
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    same = pc.and_(
        pc.equal(pc.cast(pc.month(parsed), pa.float64()), pc.cast(month, pa.float64())),
        pc.equal(pc.cast(pc.day(parsed), pa.float64()), pc.cast(day, pa.float64())),
    )
    return pc.if_else(same, parsed, pa.scalar(None, parsed.type))


def _whole(arr: pa.Array, part: str) -> pa.Array:
    least, most = _RANGES[part]
    inside = pc.and_(pc.greater_equal(arr, least), pc.less_equal(arr, most))
    return pc.and_(inside, pc.equal(pc.floor(arr), arr) if part != "second" else inside)


def _offset(parts: dict[str, pa.Array], rows: int) -> pa.Array:
    """Microseconds after midnight of hour, minute, second (each optional); `24:00:00` is the
    next midnight, any other hour past 23 is null."""
    total: pa.Array | None = None
    ok: pa.Array | None = None
    for part, arr in parts.items():
        term = pc.multiply(arr, float(_US_PER[part]))
        valid = _whole(arr, part)
        total = term if total is None else pc.add(total, term)
        ok = valid if ok is None else pc.and_(ok, valid)
    if total is None or ok is None:
        return pa.repeat(pa.scalar(0, pa.int64()), rows)  # a date alone: its midnight
    hour = parts.get("hour")
    if hour is not None:
        past = pc.greater(total, 24 * float(_US_PER["hour"]))
        ok = pc.and_(ok, pc.invert(past))
    return pc.cast(pc.round(pc.if_else(ok, total, pa.scalar(None, pa.float64()))), pa.int64())


def _date(arr: pa.Array, order: str) -> pa.Array:
    """A date column (text in `order`, or typed) as timestamp[s]; null where it is no date."""
    if pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        return pc.cast(pc.cast(arr, pa.date32()), pa.timestamp("s"))
    pattern = _YEAR_FIRST if order == "ymd" else _YEAR_LAST
    parts = pc.extract_regex(arr, pattern)
    y, m, d = {"ymd": (0, 1, 2), "mdy": (2, 0, 1), "dmy": (2, 1, 0)}[order]
    return _ymd(*(_number(pc.struct_field(parts, i)) for i in (y, m, d)))


def _clock(arr: pa.Array) -> pa.Array:
    """A time-of-day column (`H:MM[:SS[.f]]` text, `24:00` allowed, or typed) as microseconds."""
    if pa.types.is_time(arr.type):
        return pc.cast(pc.cast(arr, pa.time64("us")), pa.int64())
    clock = pc.extract_regex(arr, _CLOCK)
    hour, minute, second = (pc.struct_field(clock, i) for i in range(3))
    second = pc.if_else(pc.equal(second, ""), "0", second)
    parts = {"hour": _number(hour), "minute": _number(minute), "second": _number(second)}
    return _offset(parts, len(arr))
