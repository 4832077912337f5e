import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice import read
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Opened
from sluice.read.readers import json as json_reader
from sluice.read.readers.json import open_json


def _open(
    tmp_path: Path, data: bytes, name: str = "data.json", *, depth: int = 2, batch_rows: int = 1000
) -> Opened:
    path = tmp_path / name
    path.write_bytes(data)
    rules = DatasetRules(name="t", json_depth=depth)
    return open_json(read.detect_source(path), rules, batch_rows)


def _rows(opened: Opened) -> dict[str, list[object]]:
    return pa.Table.from_batches(list(opened.batches)).to_pydict()


def _ndjson(*records: object) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def test_ndjson_with_bom_crlf_and_blank_lines_reads_every_record(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"t": "2024-01-01", "v": 1}\r\n\r\n  \r\n{"t": "2024-01-02", "v": 2}\r\n\n'
    opened = _open(tmp_path, data, "a.ndjson")
    assert opened.names == ["t", "v"]
    assert _rows(opened) == {"t": ["2024-01-01", "2024-01-02"], "v": ["1", "2"]}


def test_pretty_printed_array_reads_objects_spanning_lines(tmp_path: Path) -> None:
    records = [{"t": "2024-01-01", "v": 1}, {"t": "2024-01-02", "v": 2}]
    opened = _open(tmp_path, json.dumps(records, indent=4).encode())
    assert opened.names == ["t", "v"]
    assert _rows(opened) == {"t": ["2024-01-01", "2024-01-02"], "v": ["1", "2"]}


def test_single_pretty_printed_object_is_one_record(tmp_path: Path) -> None:
    data = b'{\n  "t": "2024-01-01",\n  "v": {\n    "x": 1\n  }\n}\n'
    opened = _open(tmp_path, data)
    assert opened.names == ["t", "v.x"]
    assert _rows(opened) == {"t": ["2024-01-01"], "v.x": ["1"]}


@pytest.mark.parametrize(
    "name,data",
    [
        ("a.ndjson.gz", gzip.compress(_ndjson({"t": "2024-01-01", "v": 1}, {"t": "x", "v": 2}))),
        ("a.json.gz", gzip.compress(b'[{"t": "2024-01-01", "v": 1},\n {"t": "x", "v": 2}]')),
    ],
)
def test_gzip_compressed_json_is_read_through_detect_source(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    source = read.detect_source(path)
    assert source.compression == "gzip"
    opened = open_json(source, DatasetRules(name="t"), 1000)
    assert _rows(opened) == {"t": ["2024-01-01", "x"], "v": ["1", "2"]}


def test_nested_objects_flatten_to_depth_two_and_deeper_parts_are_json_text(
    tmp_path: Path,
) -> None:
    opened = _open(tmp_path, _ndjson({"id": 1, "a": {"b": {"c": 1}, "d": "x"}}))
    assert opened.names == ["id", "a.b", "a.d"]
    assert opened.json_columns == {"a.b"}
    assert _rows(opened) == {"id": ["1"], "a.b": ['{"c":1}'], "a.d": ["x"]}


def test_json_depth_one_keeps_objects_whole_as_json_text(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson({"id": 1, "a": {"b": {"c": 1}, "d": "x"}}), depth=1)
    assert opened.names == ["id", "a"]
    assert opened.json_columns == {"a"}
    assert _rows(opened) == {"id": ["1"], "a": ['{"b":{"c":1},"d":"x"}']}


def test_arrays_become_compact_json_text_columns(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson({"tags": ["é", 1.5, None], "pts": [{"a": 1e3}]}, {"tags": []}))
    assert opened.json_columns == {"tags", "pts"}
    assert _rows(opened) == {"tags": ['["é",1.5,null]', "[]"], "pts": ['[{"a":1000.0}]', None]}


def test_key_seen_only_late_is_a_column_in_every_batch(tmp_path: Path) -> None:
    records = [{"v": i} for i in range(4)] + [{"v": 4, "late": {"x": True}}]
    opened = _open(tmp_path, _ndjson(*records), batch_rows=2)
    batches = list(opened.batches)
    assert opened.names == ["v", "late.x"]
    assert [b.schema.names for b in batches] == [["v", "late.x"]] * 3
    assert pa.Table.from_batches(batches).to_pydict() == {
        "v": ["0", "1", "2", "3", "4"],
        "late.x": [None, None, None, None, "true"],
    }


def test_escaped_newline_and_non_ascii_in_strings_are_kept(tmp_path: Path) -> None:
    data = '[{"note": "line one\\nline two", "city": "Zürich \\u00e9 😀"}]'.encode()
    assert _rows(_open(tmp_path, data)) == {
        "note": ["line one\nline two"],
        "city": ["Zürich é 😀"],
    }


def test_null_and_missing_keys_are_null_and_null_markers_stay_text(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson({"a": None, "b": "NA", "c": ""}, {"b": "null"}))
    assert _rows(opened) == {"a": [None, None], "b": ["NA", "null"], "c": ["", None]}


def test_numbers_keep_their_literal_and_booleans_read_true_false(tmp_path: Path) -> None:
    data = b'{"n": 1, "f": 2.50, "e": 1e3, "big": 123456789012345678901, "b": true}\n'
    data += b'{"n": -7, "f": -0.5, "e": 1E-3, "big": 0, "b": false}\n'
    assert _rows(_open(tmp_path, data)) == {
        "n": ["1", "-7"],
        "f": ["2.50", "-0.5"],
        "e": ["1e3", "1E-3"],
        "big": ["123456789012345678901", "0"],
        "b": ["true", "false"],
    }


def test_key_sometimes_nested_sometimes_scalar_is_json_text_in_every_row(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson({"m": {"x": 2.5}}, {"m": 5}, {"m": "s"}, {"m": None}))
    assert opened.names == ["m"]
    assert opened.json_columns == {"m"}
    assert _rows(opened) == {"m": ['{"x":2.5}', "5", '"s"', None]}


def test_object_that_is_sometimes_null_still_flattens(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson({"loc": {"lat": 51.5}}, {"loc": None}, {"loc": {}}))
    assert opened.names == ["loc.lat"]
    assert opened.json_columns == frozenset()
    assert _rows(opened) == {"loc.lat": ["51.5", None, None]}


def test_batches_never_exceed_batch_rows_and_share_one_text_schema(tmp_path: Path) -> None:
    opened = _open(tmp_path, _ndjson(*({"v": i, "w": i % 2 == 0} for i in range(7))), batch_rows=3)
    batches = list(opened.batches)
    assert [b.num_rows for b in batches] == [3, 3, 1]
    assert {b.schema for b in batches} == {pa.schema([("v", pa.string()), ("w", pa.string())])}


@pytest.mark.parametrize("chunk", [1, 2, 7])
@pytest.mark.parametrize("form", ["array", "ndjson"])
def test_records_cut_by_read_chunks_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, form: str
) -> None:
    records = [{"s": "é\n😀" * i, "n": i + 0.25, "o": {"k": [i, "x"]}} for i in range(5)]
    text = json.dumps(records, indent=1) if form == "array" else _ndjson(*records).decode()
    expected = _rows(_open(tmp_path, text.encode(), f"{form}.json"))
    monkeypatch.setattr(json_reader, "_CHUNK", chunk)
    assert _rows(_open(tmp_path, text.encode(), f"{form}.json")) == expected
    assert expected["s"][2] == "é\n😀é\n😀"


@pytest.mark.parametrize(
    "data,message",
    [
        (
            b'{"a": 1}\n{"a": 1 "b": 2}\n',
            "malformed JSON at line 2, column 9: Expecting ',' delimiter",
        ),
        (
            b'[\n  {"a": 1},\n  {"a": 2,}\n]\n',
            "malformed JSON at line 3, column 11: Expecting property name",
        ),
        (b'[{"a": 1}, {"a": 1}', "malformed JSON at line 1, column 20: the array is not closed"),
        (b'{"a": "NaN"}\n{"a": NaN}\n', "NaN is not a JSON value, at line 2, column 7"),
        (b'[{"a": 1},\n {"a": -Infinity}]', "-Infinity is not a JSON value, at line 2, column 8"),
        (b"[1, 2]", "expected JSON objects (records), found a number at line 1, column 2"),
        (b'"hello"', "expected JSON objects (records), found a string at line 1, column 1"),
        (b'{"a": 1}\n[1]\n', "expected JSON objects (records), found an array at line 2, column 1"),
        (b'[{"a": 1}]\nextra', "unexpected content after the JSON array at line 2, column 1"),
        (b"[ ]", "no records"),
        (b"\n \n", "no records"),
        (b'{"a": "ok"}\n{"a": "\xff"}\n', "invalid UTF-8 at line 2, column 8"),
    ],
)
def test_bad_json_is_unreadable_with_line_column_and_hint(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(UnreadableFile) as info:
        list(_open(tmp_path, data).batches)
    assert message in info.value.message
    assert info.value.hint


def test_invalid_utf8_hint_says_re_encode(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile) as info:
        _open(tmp_path, b'[{"a": "caf\xe9"}]')
    assert "re-encode it as UTF-8" in info.value.hint


class _Changing:
    """A source whose second read (the batch pass) differs from the first (the column pass)."""

    suffix = ".ndjson"

    def __init__(self, *contents: bytes) -> None:
        self._contents = list(contents)

    def open(self) -> io.BytesIO:
        return io.BytesIO(self._contents.pop(0))


def test_error_the_first_pass_missed_surfaces_when_the_batches_reach_it() -> None:
    good = _ndjson(*({"v": i} for i in range(5)))
    bad = good.replace(b'{"v": 3}', b'{"v": 3')
    opened = open_json(_Changing(good, bad), DatasetRules(name="t"), 2)  # type: ignore[arg-type]
    assert next(opened.batches).num_rows == 2
    with pytest.raises(UnreadableFile, match="line 4, column 8"):
        next(opened.batches)


def test_run_stages_text_columns_and_names_json_columns_by_safe_name(tmp_path: Path) -> None:
    records = [
        {"Time": "2024-01-01T00:00:00Z", "Air Temp": 1.5, "meta": {"Sensor ID": "s1"}},
        {"Time": "2024-01-01T01:00:00Z", "meta": {"deep": {"k": 1}}, "tags": ["a"]},
    ]
    path = tmp_path / "obs.ndjson"
    path.write_bytes(_ndjson(*records))
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    staged = read.run(ref, DatasetRules(name="t"), tmp_path / "staging", 1000)
    table = pq.read_table(staged.uri)
    assert table.column_names == ["time", "air_temp", "meta_sensor_id", "meta_deep", "tags"]
    assert set(table.schema.types) == {pa.string()}
    assert read.source_names(table.schema) == [
        "Time",
        "Air Temp",
        "meta.Sensor ID",
        "meta.deep",
        "tags",
    ]
    assert read.json_columns(table.schema) == {"meta_deep", "tags"}
    assert table.to_pydict()["meta_deep"] == [None, '{"k":1}']
