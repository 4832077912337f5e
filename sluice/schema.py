"""Type inference over the whole staged file, time-column detection, and the casts that apply it.

Every column starts with all candidate types; a batch whose non-null values do not all convert
removes a candidate. What survives first in `CANDIDATES` wins, so a column of numbers and text
is text, never a silent cast that loses values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from sluice.contracts import Column, InferredSchema, PgType, Staged
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict
from sluice.read import source_names
from sluice.staging import iter_batches, read_schema

STAGE = "infer_schema"
CANDIDATES: tuple[PgType, ...] = ("bigint", "double precision", "boolean", "date", "timestamptz")
TEMPORAL: frozenset[PgType] = frozenset({"date", "timestamp", "timestamptz"})
TIME_NAMES = ("time", "timestamp", "ts", "datetime", "date_time", "event_time", "date")
_TRUE = ["true", "t", "yes", "y"]
_FALSE = ["false", "f", "no", "n"]
_ZONED = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


def _to_boolean(arr: pa.Array, _tz: str) -> pa.Array:
    lowered = pc.utf8_lower(arr)
    known = pc.is_in(lowered, value_set=pa.array(_TRUE + _FALSE))
    if not pc.all(pc.or_kleene(known, pc.is_null(arr))).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.is_in(lowered, value_set=pa.array(_TRUE))


def _to_timestamptz(arr: pa.Array, tz: str) -> pa.Array:
    """ISO 8601 with an offset is taken as written; without one it is local time in `tz`."""
    zoned_mask = pc.match_substring_regex(arr, _ZONED)
    zoned_count = pc.sum(zoned_mask).as_py() or 0
    if zoned_count == len(arr) - arr.null_count:  # the common case: one kind per file
        return pc.cast(arr, pa.timestamp("us", "UTC"))
    if zoned_count == 0:
        return _local_to_utc(arr, tz)
    zoned = pc.cast(pc.if_else(zoned_mask, arr, None), pa.timestamp("us", "UTC"))
    return pc.coalesce(zoned, _local_to_utc(pc.if_else(zoned_mask, None, arr), tz))


def _local_to_utc(arr: pa.Array, tz: str) -> pa.Array:
    naive = pc.cast(arr, pa.timestamp("us"))
    local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="latest")
    return pc.cast(local, pa.timestamp("us", "UTC"))


def _plain(target: pa.DataType) -> Callable[[pa.Array, str], pa.Array]:
    def cast(arr: pa.Array, _tz: str) -> pa.Array:
        return pc.cast(arr, target)

    return cast


_CASTS: dict[PgType, Callable[[pa.Array, str], pa.Array]] = {
    "bigint": _plain(pa.int64()),
    "double precision": _plain(pa.float64()),
    "boolean": _to_boolean,
    "date": _plain(pa.date32()),
    "timestamptz": _to_timestamptz,
    "text": lambda arr, _tz: arr,
}


def cast_text(arr: pa.Array, pg_type: PgType, time_zone: str) -> pa.Array:
    """Convert a text column to the Arrow type that encodes as `pg_type`; raises ArrowInvalid."""
    trimmed = arr if pg_type == "text" else pc.utf8_trim_whitespace(arr)
    return _CASTS[pg_type](trimmed, time_zone)


def infer(staged: Staged, rules: DatasetRules, batch_rows: int) -> InferredSchema:
    """Types of every column over all batches, then the time column."""
    arrow_schema = read_schema(staged)
    names = list(arrow_schema.names)
    survivors = {n: list(CANDIDATES) for n in names}
    nulls = dict.fromkeys(names, 0)
    seen = dict.fromkeys(names, 0)
    for batch in iter_batches(staged, batch_rows):
        for name, arr in zip(names, batch.columns, strict=True):
            nulls[name] += arr.null_count
            seen[name] += len(arr) - arr.null_count
            survivors[name] = _surviving(arr, survivors[name], rules.time_zone)
    columns = tuple(
        Column(
            source=source,
            name=name,
            pg_type=survivors[name][0] if survivors[name] and seen[name] else "text",
            nullable=nulls[name] > 0,
        )
        for source, name in zip(source_names(arrow_schema), names, strict=True)
    )
    return InferredSchema(columns=columns, time_column=pick_time_column(columns, rules))


def _surviving(arr: pa.Array, candidates: list[PgType], tz: str) -> list[PgType]:
    if arr.null_count == len(arr):
        return candidates
    kept = []
    for pg_type in candidates:
        try:
            cast_text(arr, pg_type, tz)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        kept.append(pg_type)
        break  # a later candidate is only needed if this one fails on a later batch
    rest = candidates[candidates.index(kept[0]) + 1 :] if kept else []
    return kept + rest


def pick_time_column(columns: Iterable[Column], rules: DatasetRules) -> str:
    """The dataset's declared time column, else the best-named temporal column."""
    cols = list(columns)
    temporal = [c for c in cols if c.pg_type in TEMPORAL]
    if rules.time_column:
        for col in cols:
            if rules.time_column in (col.source, col.name):
                if col.pg_type not in TEMPORAL:
                    raise SchemaConflict(
                        f"time column {rules.time_column!r} holds {col.pg_type}, not timestamps",
                        hint="fix the values or the time_column rule in datasets.yaml",
                    )
                return col.name
        raise SchemaConflict(
            f"the declared time column {rules.time_column!r} is not in the file",
            hint=f"columns are {[c.source for c in cols]}; fix datasets.yaml or the file",
        )
    if not temporal:
        raise SchemaConflict(
            "no column holds timestamps or dates, so there is no time to partition on",
            hint="add an ISO 8601 time column, or name one with time_column in datasets.yaml",
        )
    return min(temporal, key=lambda c: (_time_rank(c.name), cols.index(c))).name


def _time_rank(name: str) -> int:
    if name in TIME_NAMES:
        return TIME_NAMES.index(name)
    if name.endswith(("_at", "_time", "_ts", "_timestamp", "_date")):
        return len(TIME_NAMES)
    return len(TIME_NAMES) + 1
