from pathlib import Path

import pyarrow as pa
import pytest

from sluice.casts import cast_text
from sluice.contracts import Column, Staged
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict
from sluice.schema import infer, pick_time_column
from sluice.staging import write_batches


def _staged(tmp_path: Path, columns: dict[str, list[str | None]], batch: int = 2) -> Staged:
    table = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    return write_batches(tmp_path / "raw.parquet", table.schema, table.to_batches(batch))


def _types(tmp_path: Path, columns: dict[str, list[str | None]], **rules: str) -> dict[str, str]:
    schema = infer(_staged(tmp_path, columns), DatasetRules(name="t", **rules), 2)
    return {c.name: c.pg_type for c in schema.columns}


def test_each_type_is_inferred_from_text(tmp_path: Path) -> None:
    types = _types(
        tmp_path,
        {
            "ts": ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01+02:00", None],
            "n": ["1", " -2", "3"],
            "x": ["1.5", "2", "nan"],
            "b": ["true", "False", None],
            "d": ["2024-01-01", "2024-02-29", "2024-03-01"],
            "s": ["a", "b", "c"],
            "e": [None] * 3,
        },
    )
    assert types == {
        "ts": "timestamptz",
        "n": "bigint",
        "x": "double precision",
        "b": "boolean",
        "d": "date",
        "s": "text",
        "e": "text",
    }


def test_a_later_batch_of_text_makes_a_numeric_column_text(tmp_path: Path) -> None:
    types = _types(tmp_path, {"ts": ["2024-01-01"] * 5, "v": ["1", "2", "3", "4", "n/a?"]})
    assert types["v"] == "text"


def test_a_later_batch_of_decimals_widens_integers_to_double(tmp_path: Path) -> None:
    types = _types(tmp_path, {"ts": ["2024-01-01"] * 5, "v": ["1", "2", "3", "4", "4.5"]})
    assert types["v"] == "double precision"


def test_naive_timestamps_take_the_dataset_time_zone() -> None:
    arr = pa.array(["2024-07-01 12:00:00", "2024-07-01T12:00:00Z"])
    utc = cast_text(arr, "timestamptz", "Europe/Berlin").to_pylist()
    assert [t.hour for t in utc] == [10, 12]


def test_time_column_prefers_time_names_then_position() -> None:
    cols = [
        Column("Created", "created", "date", False),
        Column("Event Time", "event_time", "timestamptz", False),
        Column("v", "v", "bigint", False),
    ]
    assert pick_time_column(cols, DatasetRules(name="t")) == "event_time"
    assert pick_time_column(cols, DatasetRules(name="t", time_column="Created")) == "created"


def test_without_a_temporal_column_the_time_dimension_is_ingested_at(tmp_path: Path) -> None:
    assert pick_time_column([Column("v", "v", "bigint", False)], DatasetRules(name="t")) == (
        "_ingested_at"
    )
    inferred = infer(_staged(tmp_path, {"a": ["1", "2"]}), DatasetRules(name="t"), 2)
    assert inferred.time_column == "_ingested_at"
    assert "partitioned on _ingested_at" in inferred.note


def test_time_prefixed_names_are_preferred_as_time_columns() -> None:
    cols = [Column("d", "day", "date", False), Column("th", "time_hour", "timestamptz", False)]
    assert pick_time_column(cols, DatasetRules(name="t")) == "time_hour"


def test_a_declared_time_column_that_is_not_temporal_is_refused() -> None:
    with pytest.raises(SchemaConflict, match="holds bigint"):
        pick_time_column(
            [Column("v", "v", "bigint", False)], DatasetRules(name="t", time_column="v")
        )


@pytest.mark.parametrize(
    "values,hours",
    [
        (["2024-01-15 12:00:00", None, "2024-07-15 12:00:00"], [11, None, 10]),  # CET, CEST
        (["2024-01-15T12:00:00+01:00", None, "2024-07-15T12:00:00Z"], [11, None, 12]),
    ],
)
def test_columns_of_only_naive_or_only_zoned_timestamps(
    values: list[str | None], hours: list[int | None]
) -> None:
    utc = cast_text(pa.array(values), "timestamptz", "Europe/Berlin").to_pylist()
    assert [t.hour if t else None for t in utc] == hours


def _columns(tmp_path: Path, columns: dict[str, list[str | None]]) -> dict[str, Column]:
    schema = infer(_staged(tmp_path, columns), DatasetRules(name="t"), 2)
    return {c.name: c for c in schema.columns}


def test_slash_dates_rfc2822_and_times_of_day_are_recognised(tmp_path: Path) -> None:
    cols = _columns(
        tmp_path,
        {
            "day": ["2024/01/02", "2024/1/3", None],
            "at": ["2024/01/02 10:00", "2024/01/02 10:05:30", "2024/01/02 23:59"],
            "sent": ["Tue, 02 Jan 2024 10:00:00 +0000", "03 Jan 2024 11:30:05 +0200", None],
            "clock": ["9:30", "09:30:15", "23:59:59.250"],
        },
    )
    assert [(c.pg_type, c.text_format) for c in cols.values()] == [
        ("date", "slash"),
        ("timestamptz", "slash"),
        ("timestamptz", "rfc2822"),
        ("time", ""),
    ]


def test_numbers_beyond_double_precision_become_numeric_with_their_scale(tmp_path: Path) -> None:
    cols = _columns(
        tmp_path,
        {
            "ts": ["2024-01-01", "2024-01-02", "2024-01-03"],
            "amount": ["12345678901234567.125", "0.5", "-3"],
            "huge_id": ["9223372036854775808", "1", "2"],  # past bigint
            "ratio": ["0.1234567890123456789e3", "1", "2"],  # an exponent: stays double
        },
    )
    assert (cols["amount"].pg_type, cols["amount"].scale) == ("numeric", 3)
    assert (cols["huge_id"].pg_type, cols["huge_id"].scale) == ("numeric", 0)
    assert cols["ratio"].pg_type == "double precision"


def test_epoch_numbers_are_timestamps_only_where_the_name_says_time(tmp_path: Path) -> None:
    cols = _columns(
        tmp_path,
        {
            "ts": ["1700000000", "1700000600", "1700001200"],
            "created_at": ["1700000000000", "1700000000500", "1700000001000"],
            "population": ["1700000000", "1700000600", "1700001200"],
        },
    )
    assert (cols["ts"].pg_type, cols["ts"].text_format) == ("timestamptz", "epoch_s")
    assert cols["created_at"].text_format == "epoch_ms"
    assert cols["population"].pg_type == "bigint"
    ms = cast_text(pa.array(["1700000000500"]), "timestamptz", "UTC", text_format="epoch_ms")
    assert ms.to_pylist()[0].isoformat() == "2023-11-14T22:13:20.500000+00:00"


def test_typed_and_json_columns_keep_their_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([1, 2], pa.timestamp("ms")),
            "n": pa.array([1, 2], pa.int32()),
            "price": pa.array([1, 2], pa.decimal128(10, 2)),
            "payload": pa.array(['{"a":1}', "[1,2]"]),
        }
    )
    meta = {b"sluice.json_columns": b'["payload"]'}
    staged = write_batches(
        tmp_path / "t.parquet", table.schema.with_metadata(meta), table.to_batches()
    )
    cols = {c.name: c for c in infer(staged, DatasetRules(name="t"), 10).columns}
    assert {n: (c.pg_type, c.scale) for n, c in cols.items()} == {
        "ts": ("timestamptz", 0),
        "n": ("bigint", 0),
        "price": ("numeric", 2),
        "payload": ("jsonb", 0),
    }


def test_a_column_of_dates_and_datetimes_is_timestamptz_not_text(tmp_path: Path) -> None:
    cols = _columns(
        tmp_path, {"ts": ["2024-01-01", "2024-01-01T10:00:00", "2024-01-02 10:00+02:00"]}
    )
    assert cols["ts"].pg_type == "timestamptz"
