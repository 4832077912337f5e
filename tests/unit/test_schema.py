from pathlib import Path

import pyarrow as pa
import pytest

from sluice.contracts import Column, Staged
from sluice.datasets import DatasetRules
from sluice.errors import SchemaConflict
from sluice.schema import cast_text, infer, pick_time_column
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


def test_no_temporal_column_is_a_schema_conflict_with_a_hint() -> None:
    with pytest.raises(SchemaConflict, match="no column holds timestamps") as info:
        pick_time_column([Column("v", "v", "bigint", False)], DatasetRules(name="t"))
    assert "time_column" in info.value.hint


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
