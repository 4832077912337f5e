"""Type inference over the whole staged file, and the time column the hypertable partitions on.

Text columns: every column starts with all candidate (type, text format) pairs; a batch whose
non-null values do not all convert removes a candidate, and what survives first wins, so a
column of numbers and text is text, never a silent cast that loses values. Numbers with more
significant digits than a double holds become numeric; numbers in a column whose name says time,
in the range of epoch seconds or milliseconds, become timestamps. Typed columns (Parquet, Arrow,
ORC) keep their type; columns the reader marked as JSON become jsonb.

A column the header leaves unnamed that holds no value in the whole file is left out (padded
exports end every line with empty fields); a time made of parts (`sluice.schema.timeparts`) becomes
a column of its own. What inference guessed joins what the reader guessed (`read.read_notes`)
in the schema's `guesses` and, the notable ones, in its `note`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, FileMeta, Guess, InferredSchema, PgType, Staged
from sluice.datasets import DatasetRules
from sluice.enrich import INGESTED_AT
from sluice.errors import SchemaConflict
from sluice.read import json_columns, read_notes, source_names
from sluice.schema import timeparts
from sluice.schema.casts import NUMERIC_PRECISION, cast_text
from sluice.staging import iter_batches, read_schema

STAGE = "infer_schema"
Candidate = tuple[PgType, str]  # (type, text format)
CANDIDATES: tuple[Candidate, ...] = (
    ("bigint", ""),
    ("double precision", ""),
    ("boolean", ""),
    ("date", ""),
    ("date", "slash"),
    ("time", ""),
    ("timestamptz", ""),
    ("timestamptz", "slash"),
    ("timestamptz", "compact"),
    ("timestamptz", "rfc2822"),
)
TEMPORAL: frozenset[PgType] = frozenset({"date", "timestamp", "timestamptz"})
TIME_NAMES = ("time", "timestamp", "ts", "datetime", "date_time", "event_time", "date")
DOUBLE_DIGITS = 15  # significant decimal digits a double always keeps
_EPOCH_RANGES = (("epoch_s", 1e8, 1e10), ("epoch_ms", 1e11, 1e13), ("epoch_us", 1e14, 1e16))
NUMBERS: frozenset[PgType] = frozenset({"bigint", "double precision"})


@dataclass(slots=True)
class _Evidence:
    """What the batches showed about one text column."""

    candidates: list[Candidate] = field(default_factory=lambda: list(CANDIDATES))
    nulls: int = 0
    values: int = 0
    digits: int = 0  # most digits in one number
    scale: int = 0  # most digits after the point
    exponent: bool = False  # some number written with an exponent, nan or inf
    low: float | None = None
    high: float | None = None

    def add(self, arr: pa.Array, tz: str) -> pa.Array | None:
        """Count the batch's values and drop the candidates it refutes; the batch as the first
        surviving candidate converts it (None where nothing converted it)."""
        self.nulls += arr.null_count
        self.values += len(arr) - arr.null_count
        if arr.null_count == len(arr) or not self.candidates:
            return None
        self.candidates, converted = _surviving(arr, self.candidates, tz)
        if converted is not None and self.candidates[0][0] in NUMBERS:
            self._numbers(arr, converted)
        return converted

    def _numbers(self, arr: pa.Array, values: pa.Array) -> None:
        """Range (for epoch detection), scale, and digits only where a value is long enough."""
        bounds = pc.min_max(values)
        self.low = _merge(min, self.low, _float(bounds["min"].as_py()))
        self.high = _merge(max, self.high, _float(bounds["max"].as_py()))
        whole = pa.types.is_integer(values.type)  # no point in any value: scale 0
        if whole and (pc.max(pc.binary_length(arr)).as_py() or 0) <= DOUBLE_DIGITS:
            return  # and no value so long that it could hold more digits than a double keeps
        text = pc.utf8_trim_whitespace(arr)
        lengths = pc.binary_length(text)  # a number that converted is ASCII: bytes = characters
        if not whole:
            point = pc.find_substring(text, ".")
            scale = pc.if_else(
                pc.greater_equal(point, 0), pc.subtract(pc.subtract(lengths, point), 1), 0
            )
            self.scale = max(self.scale, pc.max(scale).as_py() or 0)
        if (pc.max(lengths).as_py() or 0) <= DOUBLE_DIGITS:
            return  # no value can hold more digits than a double keeps
        digits = pc.utf8_length(pc.replace_substring_regex(text, r"[^0-9]", ""))
        self.digits = max(self.digits, pc.max(digits).as_py() or 0)
        self.exponent |= bool(pc.any(pc.match_substring_regex(text, "[eEnN]")).as_py())


def _merge(
    pick: Callable[[float, float], float], old: float | None, new: float | None
) -> float | None:
    if old is None or new is None:
        return new if old is None else old
    return pick(old, new)


def _surviving(
    arr: pa.Array, candidates: list[Candidate], tz: str
) -> tuple[list[Candidate], pa.Array | None]:
    """Drop the candidates this batch refutes, trying them in order until one holds; the batch
    as the first surviving candidate converts it.

    A candidate is tried on the batch's first PROBE_ROWS values first: a value that does not
    convert there does not convert in the whole batch (conversions go value by value), and a
    failed conversion of a whole batch costs as much as a good one (0.05-0.14 s for 65,536 text
    values each, ten candidates for a text column)."""
    probe = arr.slice(0, PROBE_ROWS) if len(arr) > PROBE_ROWS else None
    for index, (pg_type, text_format) in enumerate(candidates):
        if probe is not None and _converted(probe, pg_type, text_format, tz) is None:
            continue
        converted = _converted(arr, pg_type, text_format, tz)
        if converted is not None:
            return candidates[index:], converted
    return [], None


PROBE_ROWS = 256


def _converted(arr: pa.Array, pg_type: PgType, text_format: str, tz: str) -> pa.Array | None:
    try:
        return cast_text(arr, pg_type, tz, text_format=text_format, scale=0)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def infer(staged: Staged, rules: DatasetRules, batch_rows: int) -> InferredSchema:
    """Types of every column over all batches, then the time column."""
    inference = Inference(read_schema(staged), rules)
    for batch in iter_batches(staged, batch_rows):
        inference.add(batch)
    return inference.schema(*read_notes(staged))


class Inference:
    """The evidence of a stream of batches (staged names, the reader's schema metadata), added
    one batch at a time: each column's candidate types, and the shapes of time made of parts.
    `schema()` is what it implies so far, the whole file's once every batch is in. `add`
    returns the text columns as their leading candidate converted them, so a caller that
    converts each batch as it passes (sluice.onepass) need not convert twice: each with the
    (type, format) candidate that converted it."""

    def __init__(self, arrow_schema: pa.Schema, rules: DatasetRules) -> None:
        self.arrow_schema = arrow_schema
        self.rules = rules
        self.jsons = json_columns(arrow_schema)
        self.sources = source_names(arrow_schema)
        self.forced = {
            f.name: rules.forced_type(source, f.name)
            for source, f in zip(self.sources, arrow_schema, strict=True)
        }
        self.evidence = {
            name: _Evidence(candidates=_candidates(forced)) for name, forced in self.forced.items()
        }
        self.text = [f.name for f in arrow_schema if _is_text(f.type) and f.name not in self.jsons]
        self.shapes = timeparts.Shapes()

    def add(self, batch: pa.RecordBatch) -> dict[str, tuple[Candidate, pa.Array]]:
        converted = {}
        for fld, arr in zip(self.arrow_schema, batch.columns, strict=True):
            if fld.name in self.text:
                evidence = self.evidence[fld.name]
                values = evidence.add(arr, self.rules.time_zone)
                if values is not None:
                    converted[fld.name] = (evidence.candidates[0], values)
            else:
                self.evidence[fld.name].nulls += arr.null_count
        if self.rules.time_from != ():
            self.shapes.add(batch, self.text)
        return converted

    def undecided(self) -> list[str]:
        """Text columns with no value yet: their type is not known until one comes."""
        return [name for name in self.text if not self.evidence[name].values]

    def schema(self, read: tuple[Guess, ...] = (), meta: FileMeta | None = None) -> InferredSchema:
        """The columns, the time column, and what was guessed: `read`, the reader's guesses,
        first (`meta`: what the file said besides its rows)."""
        rules, evidence = self.rules, self.evidence
        columns = tuple(
            _forced(source, fld, evidence[fld.name], self.forced[fld.name])
            or _column(source, fld, evidence[fld.name], fld.name in self.jsons)
            for source, fld in zip(self.sources, self.arrow_schema, strict=True)
        )
        columns, guesses = _without_unnamed_empty(columns, evidence)
        ranges = {name: (ev.low, ev.high) for name, ev in evidence.items()}
        made = timeparts.plan(columns, rules.time_from, rules.day_first, self.shapes, ranges)
        if made.column is not None and made.guess is not None:
            columns = (made.column, *columns)
            detail = f"{made.guess.detail}, local time in {rules.time_zone}"
            guesses.append(Guess(made.guess.what, detail, made.guess.rule))
        time_column = pick_time_column(columns, rules)
        guesses = [*read, *guesses, *_time_column_guess(columns, time_column, rules)]
        note = _note(tuple(guesses), time_column, made.problem)
        return InferredSchema(columns, time_column, note, tuple(guesses), meta or FileMeta())


def _without_unnamed_empty(
    columns: tuple[Column, ...], evidence: dict[str, _Evidence]
) -> tuple[tuple[Column, ...], list[Guess]]:
    """The columns without those the header leaves unnamed and no row fills."""
    empty = [c for c in columns if c.source == "" and not evidence[c.name].values]
    if not empty:
        return columns, []
    kept = tuple(c for c in columns if c not in empty)
    count = len(empty)
    detail = f"{count} unnamed column{'s' * (count > 1)} without a value left out"
    return kept, [Guess("columns", detail, "none: a column with any value is kept")]


def _time_column_guess(
    columns: tuple[Column, ...], time_column: str, rules: DatasetRules
) -> list[Guess]:
    if rules.time_column or time_column == INGESTED_AT:
        return []
    col = next(c for c in columns if c.name == time_column)
    if col.parts:
        return []  # the time guess says it
    detail = f"time column {col.source!r}, the best-named date/time column"
    return [Guess("time column", detail, f"time_column: {col.source}", notable=False)]


def _note(guesses: tuple[Guess, ...], time_column: str, problem: str) -> str:
    """What a person should know: the notable guesses, then what is missing."""
    parts = [g.detail for g in guesses if g.notable]
    if problem:
        parts.append(problem)
    if time_column == INGESTED_AT:
        parts.append(
            "no column holds dates or timestamps: the hypertable is partitioned on "
            "_ingested_at; name a time column with time_column in datasets.yaml (or the "
            "columns it is made of with time_from) if the data has one"
        )
    return "; ".join(parts)


def _candidates(forced: str | None) -> list[Candidate]:
    if forced is None:
        return list(CANDIDATES)
    if forced == "numeric":
        return [("double precision", "")]  # numbers; the scale comes from the digits
    return [c for c in CANDIDATES if c[0] == forced]


def _forced(source: str, fld: pa.Field, ev: _Evidence, forced: str | None) -> Column | None:
    """The column as the dataset's `types` rule says, or None where no rule names it."""
    if forced is None:
        return None
    pg_type: PgType = forced  # type: ignore[assignment]  # checked by datasets.FORCIBLE_TYPES
    nullable = ev.nulls > 0
    if pg_type in ("text", "jsonb") or not _is_text(fld.type) or not ev.values:
        return Column(source, fld.name, pg_type, nullable)
    if not ev.candidates:
        raise SchemaConflict(
            f"column {source!r} does not convert to {forced} as the types rule says",
            hint="fix the values, or the column's entry under types in datasets.yaml",
        )
    if pg_type == "numeric":
        return Column(source, fld.name, "numeric", nullable, scale=ev.scale)
    return Column(source, fld.name, pg_type, nullable, text_format=ev.candidates[0][1])


def _is_text(arrow: pa.DataType) -> bool:
    return bool(pa.types.is_string(arrow) or pa.types.is_large_string(arrow))


def _column(source: str, fld: pa.Field, ev: _Evidence, is_json: bool) -> Column:
    nullable = ev.nulls > 0
    if is_json:
        return Column(source, fld.name, "jsonb", nullable)
    if not _is_text(fld.type):
        pg_type, scale = typed_pg_type(fld.type)
        return Column(source, fld.name, pg_type, nullable, scale=scale)
    if not ev.candidates or not ev.values:
        return Column(source, fld.name, "text", nullable)
    pg_type, text_format = ev.candidates[0]
    if pg_type in NUMBERS:
        return _number_column(source, fld.name, pg_type, ev, nullable)
    return Column(source, fld.name, pg_type, nullable, text_format=text_format)


def _number_column(
    source: str, name: str, pg_type: PgType, ev: _Evidence, nullable: bool
) -> Column:
    """Epoch time where the name says time, numeric where a double would lose digits."""
    epoch = _epoch_format(name, ev)
    if epoch:
        return Column(source, name, "timestamptz", nullable, text_format=epoch)
    if ev.digits > DOUBLE_DIGITS and not ev.exponent:
        if ev.digits > NUMERIC_PRECISION:
            return Column(source, name, "text", nullable)
        return Column(source, name, "numeric", nullable, scale=ev.scale)
    return Column(source, name, pg_type, nullable)


def _epoch_format(name: str, ev: _Evidence) -> str:
    if ev.low is None or ev.high is None or not _time_like(name):
        return ""
    for text_format, low, high in _EPOCH_RANGES:
        if low <= ev.low and ev.high < high:
            return text_format
    return ""


def _time_like(name: str) -> bool:
    return _time_rank(name) <= len(TIME_NAMES) or "epoch" in name or "unix" in name


def typed_pg_type(arrow: pa.DataType) -> tuple[PgType, int]:
    """The PostgreSQL type (and numeric scale) of a typed column."""
    if pa.types.is_integer(arrow):
        return "bigint", 0
    if pa.types.is_floating(arrow):
        return "double precision", 0
    if pa.types.is_decimal(arrow):
        return "numeric", int(arrow.scale)
    for check, pg_type in _TYPED:
        if check(arrow):
            return pg_type, 0
    return "text", 0


_TYPED: tuple[tuple[Callable[[pa.DataType], bool], PgType], ...] = (
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_date, "date"),
    (pa.types.is_time, "time"),
    (pa.types.is_timestamp, "timestamptz"),
)


def pick_time_column(columns: Iterable[Column], rules: DatasetRules) -> str:
    """The dataset's declared time column, else the best-named temporal column, else
    `_ingested_at`."""
    cols = list(columns)
    if rules.time_column:
        return _declared_time_column(cols, rules.time_column)
    temporal = [c for c in cols if c.pg_type in TEMPORAL]
    if not temporal:
        return INGESTED_AT  # Sluice's own lineage column: when the rows arrived
    return min(temporal, key=lambda c: (_time_rank(c.name), cols.index(c))).name


def _declared_time_column(cols: list[Column], wanted: str) -> str:
    for col in cols:
        if wanted in (col.source, col.name):
            if col.pg_type not in TEMPORAL:
                raise SchemaConflict(
                    f"time column {wanted!r} holds {col.pg_type}, not timestamps",
                    hint="fix the values or the time_column rule in datasets.yaml",
                )
            return col.name
    raise SchemaConflict(
        f"the declared time column {wanted!r} is not in the file",
        hint=f"columns are {[c.source for c in cols]}; fix datasets.yaml or the file",
    )


def _time_rank(name: str) -> int:
    if name in TIME_NAMES:
        return TIME_NAMES.index(name)
    if name.endswith(("_at", "_time", "_ts", "_timestamp", "_date")) or name.startswith(
        ("time_", "date_", "timestamp_")
    ):
        return len(TIME_NAMES)
    return len(TIME_NAMES) + 1
