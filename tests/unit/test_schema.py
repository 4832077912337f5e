from pathlib import Path

import pyarrow as pa
import pytest

from sluice.contracts import Column, InferredSchema, Staged
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict
from sluice.schema.casts import cast_text
from sluice.schema.inference import infer, pick_time_column
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


# Files as they come (issue 14): what the reader found, the columns a header leaves unnamed,
# a time made of parts, and what the schema says about its guesses


def _read(tmp_path: Path, text: str, **rules: object) -> InferredSchema:
    from sluice import read
    from sluice.contracts import FileRef

    path = tmp_path / "file.csv"
    path.write_text(text)
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    rules_ = DatasetRules(name="t", **rules)  # type: ignore[arg-type]
    return infer(read.run(ref, rules_, tmp_path / "staging", 100), rules_, 100)


NSRDB = (  # keys and values wider than the table, every line padded to the widest
    "Source,Location ID,Latitude,Longitude,Time Zone,Elevation,Local Time Zone,Version\n"
    "NSRDB,1234,40.53,-108.54,-7,2168,-7,v3\n"
    "Year,Month,Day,Hour,Minute,GHI,,\n"
    + "".join(f"2017,1,1,{h},{m},{h * 10},,\n" for h in range(3) for m in (0, 30))
)


def test_padded_metadata_unnamed_empty_columns_and_parts_make_a_timed_table(
    tmp_path: Path,
) -> None:
    schema = _read(tmp_path, NSRDB)

    assert [c.source for c in schema.columns] == [
        "time", "Year", "Month", "Day", "Hour", "Minute", "GHI",
    ]  # fmt: skip
    assert schema.time_column == "time"
    assert schema.note == (
        "header on line 3, 2 metadata lines kept; 2 unnamed columns without a value left out; "
        "time from Year, Month, Day, Hour, Minute, local time in UTC"
    )
    assert ("Time Zone", "-7") in schema.meta.fields
    rules = {g.what: g.rule for g in schema.guesses}
    assert rules["header"] == "header_row: 3"
    assert rules["time"] == "time_from: [Year, Month, Day, Hour, Minute]"


def test_an_unnamed_column_that_holds_a_value_is_kept(tmp_path: Path) -> None:
    schema = _read(tmp_path, "t,v,\n2024-01-01,1,\n2024-01-02,2,x\n")
    assert [c.source for c in schema.columns] == ["t", "v", ""]


def test_a_file_with_timestamps_of_its_own_gets_no_time_from_its_parts(tmp_path: Path) -> None:
    text = (
        "observed_at,year,month,day\n2024-01-01T00:00:00Z,2024,1,1\n2024-01-02T00:00:00Z,2024,1,2\n"
    )
    schema = _read(tmp_path, text)

    assert [c.name for c in schema.columns] == ["observed_at", "year", "month", "day"]
    assert schema.time_column == "observed_at"
    assert "time column 'observed_at'" in {g.what: g.detail for g in schema.guesses}["time column"]


def test_time_from_makes_the_time_column_even_beside_other_timestamps(tmp_path: Path) -> None:
    text = "sent_at,Y,M,D\n2024-01-01T00:00:00Z,2023,12,31\n2024-01-02T00:00:00Z,2024,1,1\n"
    schema = _read(tmp_path, text, time_from=("Y", "M", "D"), time_zone="Europe/Berlin")

    assert schema.time_column == "time"
    assert schema.column("time").parts == ("y", "m", "d")
    assert "time from Y, M, D, local time in Europe/Berlin" in schema.note


def test_pvgis_compact_timestamps_are_timestamps(tmp_path: Path) -> None:
    types = _types(tmp_path, {"time(UTC)": ["20180101:0000", "20161231:2300", "20180101T123059"]})
    assert types == {"time(UTC)": "timestamptz"}


def test_a_file_without_any_time_says_which_rules_would_name_one(tmp_path: Path) -> None:
    schema = _read(tmp_path, "a,b\nx,1\ny,2\n")
    assert schema.time_column == "_ingested_at"
    assert "time_column" in schema.note and "time_from" in schema.note
