"""Suites as plain data: the baseline the inferred schema implies, and versioned GX 1.x suite files.

No Great Expectations here: a suite is a tuple of `contracts.Expectation`; `sluice.validate`
runs it with GX.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

from sluice.contracts import Column, Expectation, InferredSchema

TIME_MIN = dt.date(1900, 1, 1)  # sanity range of the time column (inclusive bounds)
TIME_MAX = dt.date(2200, 1, 1)
_GX_SEVERITY = {"critical": "error", "warning": "warn", "info": "warn"}


def baseline_suite(schema: InferredSchema, key: Sequence[str] = ()) -> tuple[Expectation, ...]:
    """The expectations the inferred schema implies, all of severity "error".

    The table has at least one row; the time column has no nulls; neither has any column
    declared nullable=False; the key (column names) is unique: one column with
    expect_column_values_to_be_unique, several with expect_compound_columns_to_be_unique; and
    the time column's values lie between 1900-01-01 and 2200-01-01 (a sanity check, only for a
    date, timestamp or timestamptz time column; bounds typed to match the column). A file
    without a time column is partitioned on `_ingested_at`, which Sluice fills: no time checks.
    """
    names = [col.name for col in schema.columns]
    if schema.time_column not in names:
        return _without_time(schema, key, names)
    time = schema.column(schema.time_column)
    missing = [name for name in key if name not in names]
    if missing:
        raise ValueError(f"key column(s) not in the schema: {', '.join(missing)}")
    if len(set(key)) != len(key):
        raise ValueError(f"key names a column twice: {', '.join(key)}")

    suite = [
        Expectation("expect_table_row_count_to_be_between", (("min_value", 1),)),
        Expectation("expect_column_values_to_not_be_null", (("column", time.name),)),
    ]
    suite.extend(
        Expectation("expect_column_values_to_not_be_null", (("column", col.name),))
        for col in schema.columns
        if not col.nullable and col.name != time.name
    )
    if len(key) == 1:
        suite.append(Expectation("expect_column_values_to_be_unique", (("column", key[0]),)))
    elif key:
        suite.append(
            Expectation("expect_compound_columns_to_be_unique", (("column_list", tuple(key)),))
        )
    bounds = _time_bounds(time.pg_type)
    if bounds is not None:
        suite.append(
            Expectation(
                "expect_column_values_to_be_between",
                (("column", time.name), ("min_value", bounds[0]), ("max_value", bounds[1])),
            )
        )
    return tuple(suite)


def _without_time(
    schema: InferredSchema, key: Sequence[str], names: list[str]
) -> tuple[Expectation, ...]:
    """The baseline of a file whose time dimension is Sluice's own `_ingested_at`."""
    timed = InferredSchema(
        columns=(*schema.columns, Column("", schema.time_column, "timestamptz", False)),
        time_column=schema.time_column,
    )
    return tuple(e for e in baseline_suite(timed, key) if e.column != schema.time_column)


def _time_bounds(pg_type: str) -> tuple[dt.date, dt.date] | None:
    """TIME_MIN/TIME_MAX as the kind of value a column of this type compares with."""
    if pg_type == "date":
        return TIME_MIN, TIME_MAX
    if pg_type in ("timestamp", "timestamptz"):
        tz = dt.UTC if pg_type == "timestamptz" else None
        return (
            dt.datetime.combine(TIME_MIN, dt.time(), tzinfo=tz),
            dt.datetime.combine(TIME_MAX, dt.time(), tzinfo=tz),
        )
    return None


def load_suite(path: Path) -> tuple[Expectation, ...]:
    """Read a versioned GX 1.x suite JSON file (as `ExpectationSuite.to_json_dict()` writes it).

    Each expectation's severity is meta.severity ("error" or "warn"); without one, GX's own
    top-level severity maps "critical" to "error" and "warning"/"info" to "warn"; the default is
    "error". JSON arrays in kwargs become tuples (Expectation stays hashable). Whether the type
    names a known expectation is checked by `validate_table`, where GX is loaded.
    Raises ValueError naming the file on malformed content (OSError if it cannot be read).
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list):
        raise ValueError(f"{path}: not an expectation suite (no 'expectations' list)")
    return tuple(
        _parse_expectation(item, f"{path}: expectations[{i}]")
        for i, item in enumerate(doc["expectations"])
    )


def _parse_expectation(item: object, where: str) -> Expectation:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: not an object")
    type_ = item.get("type")
    if not isinstance(type_, str) or not type_:
        raise ValueError(f"{where}: 'type' must be a non-empty string")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where} ({type_}): 'kwargs' must be an object")
    meta = item.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{where} ({type_}): 'meta' must be an object")
    severity: object = meta.get("severity")
    if severity is None:
        severity = _GX_SEVERITY.get(str(item.get("severity", "critical")).lower())
    if severity not in ("error", "warn"):
        raise ValueError(
            f"{where} ({type_}): severity must be 'error' or 'warn', "
            f"got {meta.get('severity', item.get('severity'))!r}"
        )
    frozen = tuple((str(name), _freeze(value)) for name, value in kwargs.items())
    return Expectation(type_, frozen, "warn" if severity == "warn" else "error")


def _freeze(value: object) -> object:
    """JSON arrays -> tuples, so kwargs stay hashable (objects stay dicts: suite parameters)."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value
