import datetime as dt
import decimal
import gzip
import json
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from sluice import read
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Opened, Source
from sluice.read.readers.columnar import normalize_batch, open_parquet

RULES = DatasetRules(name="t")


def _open(path: Path, batch_rows: int = 1000) -> Opened:
    source = read.detect_source(path)
    return read.reader_for(source)(source, RULES, batch_rows)


def _table(opened: Opened) -> pa.Table:
    batches = list(opened.batches)
    schemas = {b.schema for b in batches}
    assert len(schemas) <= 1  # every batch shares one schema
    return pa.Table.from_batches(batches)


def _ten_rows() -> pa.Table:
    return pa.table({"i": pa.array(range(10), pa.int32()), "s": [f"v{n}" for n in range(10)]})


def _typed() -> pa.Table:
    paris = "Europe/Paris"
    return pa.table(
        {
            "i32": pa.array([1, None], pa.int32()),
            "u8": pa.array([255, 0], pa.uint8()),
            "f32": pa.array([1.5, None], pa.float32()),
            "ts": pa.array([1_700_000_000_123_456_789, None], pa.timestamp("ns", paris)),
            "cat": pa.array(["a", "b"]).dictionary_encode(),
            "d64": pa.array([dt.date(2024, 1, 2), None], pa.date64()),
            "t32": pa.array([dt.time(12, 30), None], pa.time32("s")),
            "dec": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(10, 2)),
            "big": pa.array(["x", "y"], pa.large_string()),
            "none": pa.nulls(2),
            "text_bytes": pa.array([b"caf\xc3\xa9", None], pa.binary()),
        }
    )


def test_parquet_types_are_kept_and_normalised(tmp_path: Path) -> None:
    pq.write_table(_typed(), tmp_path / "t.parquet")  # the Arrow schema travels along
    opened = _open(tmp_path / "t.parquet")
    table = _table(opened)
    assert opened.names == _typed().column_names
    assert dict(zip(table.column_names, table.schema.types, strict=True)) == {
        "i32": pa.int64(),
        "u8": pa.int64(),
        "f32": pa.float64(),
        "ts": pa.timestamp("us", "Europe/Paris"),
        "cat": pa.string(),
        "d64": pa.date32(),
        "t32": pa.time64("us"),
        "dec": pa.decimal128(10, 2),
        "big": pa.string(),
        "none": pa.string(),
        "text_bytes": pa.string(),
    }
    row = table.to_pylist()[0]
    assert row["ts"].astimezone(dt.UTC) == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, dt.UTC)
    assert (row["cat"], row["d64"], row["dec"]) == (
        "a",
        dt.date(2024, 1, 2),
        decimal.Decimal("1.50"),
    )
    assert (row["text_bytes"], row["none"]) == ("café", None)


def test_arrow_only_types_are_normalised_batch_by_batch() -> None:
    batch = pa.record_batch(
        {
            "date64": pa.array([dt.date(2024, 1, 2)], pa.date64()),
            "dict_large": pa.array(["a"], pa.large_string()).dictionary_encode(),
            "ms": pa.array([1], pa.timestamp("ms")),
            "u64": pa.array([7], pa.uint64()),
            "f16": pa.array([1.0], pa.float32()).cast(pa.float16()),
        }
    )
    normalized, json_columns = normalize_batch(batch)
    assert normalized.schema.types == [
        pa.date32(),
        pa.string(),
        pa.timestamp("us"),
        pa.int64(),
        pa.float64(),
    ]
    assert json_columns == frozenset()


@pytest.mark.parametrize(
    "array,match",
    [
        (pa.array([2**64 - 1], pa.uint64()), "'col'"),
        (pa.array([10**15], pa.timestamp("s")), "'col'"),
        (pa.array([b"\xff\xfe"], pa.binary()), "binary data"),
    ],
)
def test_values_that_do_not_fit_name_the_column(array: pa.Array, match: str) -> None:
    with pytest.raises(UnreadableFile, match=match) as info:
        normalize_batch(pa.record_batch({"col": array}))
    assert info.value.hint


def test_nested_columns_become_json_text(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": [1, 2],
            "point": [{"x": 1, "y": "a"}, None],
            "tags": [["a", "b"], []],
            "attrs": pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "n.parquet")
    opened = _open(tmp_path / "n.parquet")
    assert opened.json_columns == {"point", "tags", "attrs"}
    rows = _table(opened).to_pydict()
    assert rows["point"] == ['{"x":1,"y":"a"}', None]
    assert rows["tags"] == ['["a","b"]', "[]"]
    assert rows["attrs"] == ['{"k":1}', None]
    assert json.loads(rows["point"][0]) == {"x": 1, "y": "a"}


def test_json_text_keeps_non_finite_floats_and_odd_keys_valid() -> None:
    nested = pa.array([{1.5: float("nan")}], pa.map_(pa.float64(), pa.float64()))
    normalized, json_columns = normalize_batch(pa.record_batch({"m": nested}))
    assert normalized.column(0).to_pylist() == ['{"1.5":null}']
    assert json_columns == {"m"}


def _write_parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def test_gzip_compressed_parquet_is_spooled(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet.gz"
    path.write_bytes(gzip.compress(_write_parquet_bytes(_ten_rows())))
    assert _table(_open(path, batch_rows=4)).to_pydict() == _ten_rows().to_pydict()


def test_zip_holding_one_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data/x.parquet", _write_parquet_bytes(_ten_rows()))
    assert _table(_open(path)).column("s").to_pylist() == [f"v{n}" for n in range(10)]


def test_spool_is_removed_after_iteration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    path = tmp_path / "x.parquet.gz"
    path.write_bytes(gzip.compress(_write_parquet_bytes(_ten_rows())))
    opened = _open(path)
    assert len(list((tmp_path / "tmp").iterdir())) == 1
    list(opened.batches)
    assert not list((tmp_path / "tmp").iterdir())


@pytest.mark.parametrize("fmt", ["parquet", "feather", "stream", "orc"])
def test_batches_are_rechunked(tmp_path: Path, fmt: str) -> None:
    table = _ten_rows()
    path = tmp_path / f"x.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=7)
    elif fmt == "feather":
        feather.write_feather(table, path, chunksize=6)
    elif fmt == "stream":
        with ipc.new_stream(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=2):  # small batches are joined
                writer.write_batch(batch)
    else:
        orc.write_table(table, path)
    batches = list(_open(path, batch_rows=3).batches)
    assert [b.num_rows for b in batches] == [3, 3, 3, 1]
    result = pa.Table.from_batches(batches)
    assert result.schema.types == [pa.int64(), pa.string()]
    assert result.column("i").to_pylist() == list(range(10))


def test_feather_v1_and_compressed_feather_v2(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2], "t": pa.array([1, 2], pa.timestamp("ns"))})
    with pytest.warns(DeprecationWarning):
        feather.write_feather(table, tmp_path / "v1.feather", version=1)
    feather.write_feather(table, tmp_path / "v2.arrow", compression="zstd")
    for name in ("v1.feather", "v2.arrow"):
        result = _table(_open(tmp_path / name))
        assert result.schema.types == [pa.int64(), pa.timestamp("us")]
        assert result.column("a").to_pylist() == [1, 2]


def test_gzip_compressed_ipc_stream_needs_no_spool(tmp_path: Path) -> None:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, _ten_rows().schema) as writer:
        writer.write_table(_ten_rows())
    path = tmp_path / "x.arrows.gz"
    path.write_bytes(gzip.compress(sink.getvalue().to_pybytes()))
    assert _table(_open(path)).num_rows == 10


def test_orc_types(tmp_path: Path) -> None:
    table = pa.table(
        {
            "t": pa.array([1_700_000_000_000_000_001], pa.timestamp("ns")),
            "i": pa.array([1], pa.int8()),
            "f": pa.array([0.5], pa.float32()),
        }
    )
    orc.write_table(table, tmp_path / "x.orc")
    result = _table(_open(tmp_path / "x.orc"))
    assert result.schema.types == [pa.timestamp("us"), pa.int64(), pa.float64()]
    assert result.column("t").to_pylist() == [dt.datetime(2023, 11, 14, 22, 13, 20)]


@pytest.mark.parametrize("kind", ["parquet", "arrow", "orc"])
def test_truncated_files_are_unreadable_with_a_hint(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"x.{kind}"
    if kind == "parquet":
        pq.write_table(_ten_rows(), path)
    elif kind == "arrow":
        feather.write_feather(_ten_rows(), path)
    else:
        orc.write_table(_ten_rows(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnreadableFile, match="malformed") as info:
        list(_open(path).batches)
    assert "truncated" in info.value.hint


def test_truncated_gzip_wrapper_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet.gz"
    packed = gzip.compress(_write_parquet_bytes(_ten_rows()))
    path.write_bytes(packed[: len(packed) - 40])
    source = Source(path=path, compression="gzip", name=path.name)
    with pytest.raises(UnreadableFile, match="malformed Parquet"):
        list(open_parquet(source, RULES, 100).batches)


def test_zero_row_parquet_yields_no_batches(tmp_path: Path) -> None:
    pq.write_table(_ten_rows().slice(0, 0), tmp_path / "empty.parquet")
    opened = _open(tmp_path / "empty.parquet")
    assert opened.names == ["i", "s"]
    assert list(opened.batches) == []


def _run(path: Path) -> pa.Table:
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    staged = read.run(ref, RULES, path.parent / "staging", 4)
    return pq.read_table(staged.uri)


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "orc"])
def test_read_run_stages_each_format(tmp_path: Path, fmt: str) -> None:
    table = pa.table(
        {
            "Time": pa.array(
                [1_700_000_000_000_000_000 + n for n in range(10)], pa.timestamp("ns")
            ),
            "Value": pa.array(range(10), pa.int16()),
        }
    )
    path = tmp_path / f"in.{fmt}"
    {"parquet": pq.write_table, "arrow": feather.write_feather, "orc": orc.write_table}[fmt](
        table, path
    )
    staged = _run(path)
    assert staged.column_names == ["time", "value"]
    assert staged.schema.types == [pa.timestamp("us"), pa.int64()]
    assert read.source_names(staged.schema) == ["Time", "Value"]
    assert staged.column("value").to_pylist() == list(range(10))


def test_read_run_marks_json_columns(tmp_path: Path) -> None:
    pq.write_table(pa.table({"T": [1], "Meta Data": [{"a": 1}]}), tmp_path / "j.parquet")
    staged = _run(tmp_path / "j.parquet")
    assert read.json_columns(staged.schema) == {"meta_data"}
