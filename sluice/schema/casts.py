"""Conversions of staged columns to the Arrow types that encode as their PostgreSQL types.

Text columns convert by a (type, text format) pair that inference chose for the whole column,
so a load converts exactly as inference checked. Typed columns (Parquet, Arrow, ORC) convert
by Arrow casts; naive timestamps, in text or typed, are local time in the dataset's time zone.
Every function raises `pyarrow.ArrowInvalid` when a value does not convert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, PgType
from sluice.errors import SchemaConflict
from sluice.schema import timeparts

UTC_US = pa.timestamp("us", "UTC")
ARROW_TYPES: dict[PgType, pa.DataType] = {
    "boolean": pa.bool_(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "text": pa.string(),
    "jsonb": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": UTC_US,
}
NUMERIC_PRECISION = 38
_TRUE = ["true", "t", "yes", "y"]
_FALSE = ["false", "f", "no", "n"]
_ZONED = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"  # an offset after a time
_EPOCH_SCALE = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}

Cast = Callable[[pa.Array, str], pa.Array]


def arrow_type(pg_type: PgType, scale: int = 0) -> pa.DataType:
    if pg_type == "numeric":
        return pa.decimal128(NUMERIC_PRECISION, scale)
    return ARROW_TYPES[pg_type]


def convert(arr: pa.Array, col: Column, tz: str) -> pa.Array:
    """Any staged column (text or typed) as the Arrow type of `col.pg_type`."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return cast_text(arr, col.pg_type, tz, scale=col.scale, text_format=col.text_format)
    if pa.types.is_timestamp(arr.type) and col.pg_type == "timestamptz":
        if arr.type.tz is None:
            return local_to_utc(pc.cast(arr, pa.timestamp("us")), tz)
        return pc.cast(arr, UTC_US)
    if col.pg_type in ("text", "jsonb"):
        return pc.cast(arr, pa.string())
    return pc.cast(arr, arrow_type(col.pg_type, col.scale))


def convert_columns(batch: pa.RecordBatch, columns: Sequence[Column], tz: str) -> list[pa.Array]:
    """The batch's columns as their inferred types (a time made of parts composed from them);
    a value that no longer converts (the staged data changed since inference) is a
    SchemaConflict naming the column."""
    return [convert_column(batch, col, tz) for col in columns]


def convert_column(batch: pa.RecordBatch, col: Column, tz: str) -> pa.Array:
    """One column of the batch as its inferred type (see convert_columns)."""
    try:
        if col.parts:
            return timeparts.compose(batch, col, tz)
        return convert(batch.column(col.name), col, tz)
    except pa.ArrowInvalid as exc:
        raise SchemaConflict(
            f"column {col.source!r} no longer converts to {col.pg_type} ({exc})",
            hint="the staged data changed since inference; re-run the file",
        ) from exc


def cast_text(
    arr: pa.Array, pg_type: PgType, tz: str, *, scale: int = 0, text_format: str = ""
) -> pa.Array:
    """A text column as `pg_type`, reading values in `text_format`; raises ArrowInvalid."""
    if pg_type in ("text", "jsonb"):
        return arr
    trimmed = pc.utf8_trim_whitespace(arr)
    if pg_type == "numeric":
        return pc.cast(trimmed, pa.decimal128(NUMERIC_PRECISION, scale))
    if text_format in _EPOCH_SCALE:
        return _epoch(trimmed, _EPOCH_SCALE[text_format])
    if text_format == "slash":
        trimmed = _slash_to_iso(trimmed)
    if text_format == "compact":
        trimmed = _compact_to_iso(trimmed)
    if text_format == "rfc2822":
        return _rfc2822(trimmed)
    return _TEXT_CASTS[pg_type](trimmed, tz)


def _slash_to_iso(arr: pa.Array) -> pa.Array:
    """`2024/1/3 10:00` -> `2024-01-03 10:00` (year first: never a guess between d/m and m/d)."""
    arr = pc.replace_substring_regex(arr, r"^(\d{4})/(\d)/", r"\1/0\2/")
    arr = pc.replace_substring_regex(arr, r"^(\d{4})/(\d{2})/(\d)(\D|$)", r"\1/\2/0\3\4")
    return pc.replace_substring_regex(arr, r"^(\d{4})/(\d{2})/(\d{2})", r"\1-\2-\3")


def _compact_to_iso(arr: pa.Array) -> pa.Array:
    """`20180101:0000` (PVGIS), `20180101T000000` -> `2018-01-01T00:00:00`; nothing else.
    A column whose first values are not so is refuted at once (inference tries every text
    column: the rewriting and the cast cost more than the look)."""
    head = arr.slice(0, 64).drop_null()
    if not pc.all(pc.match_substring_regex(head, r"^\d{8}[T:]\d{4}(\d{2})?$")).as_py():
        raise pa.ArrowInvalid("not a compact timestamp")
    day = r"^(\d{4})(\d{2})(\d{2})[T:](\d{2})(\d{2})"
    arr = pc.replace_substring_regex(arr, day + r"$", r"\1-\2-\3T\4:\5:00")
    return pc.replace_substring_regex(arr, day + r"(\d{2})$", r"\1-\2-\3T\4:\5:\6")


def _plain(target: pa.DataType) -> Cast:
    def cast(arr: pa.Array, _tz: str) -> pa.Array:
        return pc.cast(arr, target)

    return cast


def _to_boolean(arr: pa.Array, _tz: str) -> pa.Array:
    lowered = pc.utf8_lower(arr)
    known = pc.is_in(lowered, value_set=pa.array(_TRUE + _FALSE))
    if not pc.all(pc.or_kleene(known, pc.is_null(arr))).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.is_in(lowered, value_set=pa.array(_TRUE))


def _to_time(arr: pa.Array, _tz: str) -> pa.Array:
    """`9:30`, `09:30:15`, `09:30:15.250` -> time64[us]."""
    if not pc.all(pc.match_substring_regex(arr, r"^\d{1,2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")).as_py():
        raise pa.ArrowInvalid("not a time of day")
    padded = pc.replace_substring_regex(arr, r"^(\d):", r"0\1:")
    stamps = pc.cast(pc.binary_join_element_wise("1970-01-01T", padded, ""), pa.timestamp("us"))
    return pc.cast(stamps, pa.time64("us"))


def _to_timestamptz(arr: pa.Array, tz: str) -> pa.Array:
    """ISO 8601 with an offset is taken as written; without one it is local time in `tz`."""
    try:  # every value with its offset: the common case, without a regex over every value
        return pc.cast(arr, UTC_US)  # (a value without an offset fails this cast)
    except pa.ArrowInvalid:
        pass
    zoned_mask = pc.match_substring_regex(arr, _ZONED)
    zoned_count = pc.sum(zoned_mask).as_py() or 0
    if zoned_count == len(arr) - arr.null_count:  # the common case: one kind per file
        return pc.cast(arr, UTC_US)
    if zoned_count == 0:
        return local_to_utc(pc.cast(arr, pa.timestamp("us")), tz)
    zoned = pc.cast(pc.if_else(zoned_mask, arr, None), UTC_US)
    naive = pc.cast(pc.if_else(zoned_mask, None, arr), pa.timestamp("us"))
    return pc.coalesce(zoned, local_to_utc(naive, tz))


def local_to_utc(naive: pa.Array, tz: str) -> pa.Array:
    """At a DST fall-back the earlier instant; in a spring-forward gap the later one."""
    local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="latest")
    return pc.cast(local, UTC_US)


def _rfc2822(arr: pa.Array) -> pa.Array:
    """`Tue, 02 Jan 2024 10:00:00 +0000` (weekday optional, GMT/UT for +0000)."""
    bare = pc.replace_substring_regex(arr, r"^[A-Za-z]{3},\s*", "")
    bare = pc.replace_substring_regex(bare, r"\s(GMT|UT|UTC|Z)$", " +0000")
    return pc.cast(pc.strptime(bare, format="%d %b %Y %H:%M:%S %z", unit="us"), UTC_US)


def _epoch(arr: pa.Array, to_us: int) -> pa.Array:
    micros = pc.round(pc.multiply(pc.cast(arr, pa.float64()), float(to_us)))
    return pc.cast(pc.cast(micros, pa.int64()), UTC_US)


_TEXT_CASTS: dict[PgType, Cast] = {
    "bigint": _plain(pa.int64()),
    "double precision": _plain(pa.float64()),
    "boolean": _to_boolean,
    "date": _plain(pa.date32()),
    "time": _to_time,
    "timestamp": _plain(pa.timestamp("us")),
    "timestamptz": _to_timestamptz,
}
