"""Suites as plain data: the baseline the inferred schema implies, versioned GX 1.x suite files,
and a starting suite written from a file's profile (`sluice suite init`).

No Great Expectations here: a suite is a tuple of `contracts.Expectation`; `sluice.validate`
runs it (the baseline's types natively, others with GX).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluice.contracts import Column, ColumnProfile, Expectation, InferredSchema, Profile

TIME_MIN = dt.date(1900, 1, 1)  # sanity range of the time column (inclusive bounds)
TIME_MAX = dt.date(2200, 1, 1)
_GX_SEVERITY = {"critical": "error", "warning": "warn", "info": "warn"}


def baseline_suite(schema: InferredSchema, key: Sequence[str] = ()) -> tuple[Expectation, ...]:
    """The expectations the inferred schema implies, all of severity "error".

    The table has at least one row; the time column has no nulls; the key (column names) is
    unique: one column with expect_column_values_to_be_unique, several with
    expect_compound_columns_to_be_unique; and the time column's values lie between 1900-01-01
    and 2200-01-01 (a sanity check, only for a date, timestamp or timestamptz time column;
    bounds typed to match the column). A file without a time column is partitioned on
    `_ingested_at`, which Sluice fills: no time checks. No other column is checked for nulls:
    a column is inferred non-nullable because the file has no null in it, so such a check
    could not fail (and one pass, deciding types from a sample, cannot know it in advance).
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


def load_suite(path: Path, text: str | None = None) -> tuple[Expectation, ...]:
    """Read a versioned GX 1.x suite JSON file (as `ExpectationSuite.to_json_dict()` writes it).

    Each expectation's severity is meta.severity ("error" or "warn"); without one, GX's own
    top-level severity maps "critical" to "error" and "warning"/"info" to "warn"; the default is
    "error". JSON arrays in kwargs become tuples (Expectation stays hashable). Whether the type
    names a known expectation is checked by `sluice.validate`, with GX.
    `text`: the file's content as read before (a run's snapshot of its rules); else it is read.
    Raises ValueError naming the file on malformed content (OSError if it cannot be read).
    """
    if text is None:
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


# --- a starting suite from a profile (`sluice suite init`) -------------------------------------

CATEGORY_SET_MAX = 20  # a text column with at most this many values gets a value set


def suite_from_profile(
    dataset: str, profile: Profile, *, source: str = "", time_column: str = ""
) -> dict[str, Any]:
    """A GX 1.x suite (as JSON) of what the profile saw, for a person to edit.

    Every expectation starts as a warning, except "no nulls" where the file had none: columns
    match the file's, no more nulls than seen (a `mostly` a little below the file's share),
    numbers between the file's min and max, a small set of text values as a value set.
    The baseline (time column not null and in range, key unique) is always run: not repeated.
    """
    items: list[dict[str, Any]] = [
        _item(
            "expect_table_columns_to_match_set",
            {"column_set": [c.name for c in profile.columns], "exact_match": False},
            "warn",
        )
    ]
    for col in profile.columns:
        items += _column_items(col, time_column)
    return {
        "name": dataset,
        "expectations": items,
        "meta": {
            "sluice": f"generated by `sluice suite init` from {source or 'a file'}: edit freely",
            "rows_profiled": profile.rows,
        },
    }


def _item(type_: str, kwargs: dict[str, Any], severity: str) -> dict[str, Any]:
    return {"type": type_, "kwargs": kwargs, "meta": {"severity": severity}}


def _column_items(col: ColumnProfile, time_column: str) -> list[dict[str, Any]]:
    if not col.count or col.nulls == col.count:
        return []
    items = []
    if col.name != time_column:  # the baseline checks the time column's nulls
        if col.nulls == 0:
            items.append(
                _item("expect_column_values_to_not_be_null", {"column": col.name}, "error")
            )
        else:
            # five points of slack below the share seen, in whole percent
            mostly = max(0.0, math.floor(round((1 - col.null_ratio) * 100, 6) - 5) / 100)
            kwargs = {"column": col.name, "mostly": mostly}
            items.append(_item("expect_column_values_to_not_be_null", kwargs, "warn"))
    if col.pg_type in ("bigint", "double precision") and col.min is not None:
        parse = int if col.pg_type == "bigint" else float
        bounds = {"min_value": parse(col.min), "max_value": parse(str(col.max))}
        items.append(
            _item("expect_column_values_to_be_between", {"column": col.name, **bounds}, "warn")
        )
    if col.pg_type == "text" and col.categories_complete and col.distinct <= CATEGORY_SET_MAX:
        values = sorted(v for v, _ in col.top)
        kwargs = {"column": col.name, "value_set": values}
        items.append(_item("expect_column_values_to_be_in_set", kwargs, "warn"))
    return items


def write_suite(path: Path, suite: dict[str, Any]) -> Path:
    """Write the suite as indented JSON (a versioned file people diff and review)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
