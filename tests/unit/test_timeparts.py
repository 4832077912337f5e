"""A time made of parts: which columns (the rule, or the common layouts), and the time each
row's parts make, `24:00` included, in the dataset's time zone."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from sluice.contracts import Column
from sluice.errors import SchemaConflict
from sluice.schema import timeparts

UTC = dt.UTC


def _batch(**columns: list[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({k: pa.array(v) for k, v in columns.items()})


def _time(batch: pa.RecordBatch, parts: tuple[str, ...], fmt: str, tz: str = "UTC") -> list[object]:
    col = Column("time", "time", "timestamptz", True, text_format=fmt, parts=parts)
    return timeparts.compose(batch, col, tz).to_pylist()


def test_year_month_day_hour_minute_as_text_make_the_time() -> None:
    batch = _batch(
        year=["2017", "2017", "2017"],
        month=["1", "12", "2"],
        day=["1", "31", "28"],
        hour=["0", "23", "24"],
        minute=["30", "30", "0"],
    )
    assert _time(batch, ("year", "month", "day", "hour", "minute"), "parts") == [
        dt.datetime(2017, 1, 1, 0, 30, tzinfo=UTC),
        dt.datetime(2017, 12, 31, 23, 30, tzinfo=UTC),
        dt.datetime(2017, 3, 1, 0, 0, tzinfo=UTC),  # 24:00 is the next day's midnight
    ]


def test_parts_that_make_no_time_give_a_null_time() -> None:
    batch = _batch(
        year=[2017, 2017, 2017, 2017, None, 2017],
        month=[2, 13, 1, 1, 1, 1],
        day=[30, 1, 1, 1, 1, 1],
        hour=[0, 0, 25, 24, 0, 0],
        minute=[0, 0, 0, 30, 0, 0],
    )
    times = _time(batch, ("year", "month", "day", "hour", "minute"), "parts")
    assert times == [None, None, None, None, None, dt.datetime(2017, 1, 1, tzinfo=UTC)]


def test_a_date_and_a_time_of_day_column_with_24_00() -> None:
    batch = _batch(d=["12/31/1980", "01/01/1981", "1/2/1981"], t=["24:00", "01:00", "2:05:30"])
    assert _time(batch, ("d", "t"), "date_time_mdy") == [
        dt.datetime(1981, 1, 1, 0, 0, tzinfo=UTC),
        dt.datetime(1981, 1, 1, 1, 0, tzinfo=UTC),
        dt.datetime(1981, 1, 2, 2, 5, 30, tzinfo=UTC),
    ]
    batch = _batch(d=["31.12.1980", "2020-02-30"], t=["23:00", "00:00"])
    assert _time(batch, ("d", "t"), "date_time_dmy")[0] == dt.datetime(1980, 12, 31, 23, tzinfo=UTC)
    assert _time(batch, ("d", "t"), "date_time_dmy")[1] is None


def test_typed_date_and_time_columns_make_the_time() -> None:
    batch = _batch(d=[dt.date(2024, 3, 1)], t=[dt.time(9, 30)])
    assert _time(batch, ("d", "t"), "date_time_ymd") == [dt.datetime(2024, 3, 1, 9, 30, tzinfo=UTC)]


def test_the_time_is_local_time_in_the_datasets_time_zone() -> None:
    batch = _batch(year=[2024, 2024], month=[1, 7], day=[15, 15], hour=[12, 12])
    assert _time(batch, ("year", "month", "day", "hour"), "parts", "Europe/Berlin") == [
        dt.datetime(2024, 1, 15, 11, tzinfo=UTC),
        dt.datetime(2024, 7, 15, 10, tzinfo=UTC),
    ]


# Which columns


def _col(name: str, pg_type: str = "bigint", source: str = "") -> Column:
    return Column(source or name.capitalize(), name, pg_type, False)  # type: ignore[arg-type]


PARTS = (_col("year"), _col("month"), _col("day"), _col("hour"), _col("minute"), _col("ghi"))
RANGES = {
    "year": (2017.0, 2017.0),
    "month": (1.0, 12.0),
    "day": (1.0, 31.0),
    "hour": (0.0, 23.0),
    "minute": (0.0, 30.0),
}


def test_year_month_day_hour_minute_columns_in_range_are_detected() -> None:
    plan = timeparts.plan(PARTS, None, None, timeparts.Shapes(), RANGES)

    assert plan.column is not None
    assert plan.column.parts == ("year", "month", "day", "hour", "minute")
    assert (plan.column.name, plan.column.pg_type) == ("time", "timestamptz")
    assert (
        plan.guess is not None and plan.guess.rule == "time_from: [Year, Month, Day, Hour, Minute]"
    )


def test_parts_out_of_range_or_a_file_with_its_own_timestamps_are_left_alone() -> None:
    months = {**RANGES, "month": (1.0, 14.0)}
    assert timeparts.plan(PARTS, None, None, timeparts.Shapes(), months).column is None
    stamped = (*PARTS, _col("observed_at", "timestamptz"))
    assert timeparts.plan(stamped, None, None, timeparts.Shapes(), RANGES).column is None
    assert timeparts.plan(PARTS, (), None, timeparts.Shapes(), RANGES).column is None  # never


def _shapes(**columns: list[str]) -> timeparts.Shapes:
    shapes = timeparts.Shapes()
    shapes.add(_batch(**columns), list(columns))
    return shapes


def test_a_date_column_then_a_time_column_is_detected_month_first_by_its_name() -> None:
    cols = (_col("date_mm_dd_yyyy", "text", "Date (MM/DD/YYYY)"), _col("t", "text", "Time"))
    shapes = _shapes(date_mm_dd_yyyy=["01/02/2024", "01/03/2024"], t=["01:00", "24:00"])

    plan = timeparts.plan(cols, None, None, shapes, {})

    assert plan.column is not None and plan.column.text_format == "date_time_mdy"


def test_the_date_order_comes_from_the_values_else_the_rule_else_nothing() -> None:
    cols = (_col("d", "text", "D"), _col("t", "time", "T"))
    later = _shapes(d=["13/01/2024", "01/02/2024"])
    plan = timeparts.plan(cols, None, None, later, {})
    assert plan.column is not None and plan.column.text_format == "date_time_dmy"

    ambiguous = _shapes(d=["01/02/2024", "02/01/2024"])
    plan = timeparts.plan(cols, None, None, ambiguous, {})
    assert plan.column is None
    assert "set `time_from: [D, T]` and `day_first: true` or `false`" in plan.problem
    plan = timeparts.plan(cols, None, False, ambiguous, {})
    assert plan.column is not None and plan.column.text_format == "date_time_mdy"


def test_time_from_names_the_columns_and_a_missing_one_is_a_schema_conflict() -> None:
    plan = timeparts.plan(PARTS, ("Year", "Month", "Day"), None, timeparts.Shapes(), {})
    assert plan.column is not None and plan.column.parts == ("year", "month", "day")

    with pytest.raises(SchemaConflict, match="time_from names 'Hour of day'"):
        timeparts.plan(PARTS, ("Year", "Hour of day"), None, timeparts.Shapes(), {})
