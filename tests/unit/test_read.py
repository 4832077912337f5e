import bz2
import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sluice import read
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile


def _read(tmp_path: Path, name: str, data: bytes) -> dict[str, list[object]]:
    path = tmp_path / name
    path.write_bytes(data)
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    staged = read.run(ref, DatasetRules(name="t"), tmp_path / "staging", 1000)
    table = pq.read_table(staged.uri)
    assert read.source_names(table.schema)  # the original header travels with the data
    return table.to_pydict()


CSV = b'Time,Air Temp,Note\n2024-01-01T00:00:00Z,NA,"a, ""quoted""\nline"\n'


def test_csv_with_quotes_newlines_and_na_reads_as_text(tmp_path: Path) -> None:
    assert _read(tmp_path, "a.csv", CSV) == {
        "time": ["2024-01-01T00:00:00Z"],
        "air_temp": [None],
        "note": ['a, "quoted"\nline'],
    }


@pytest.mark.parametrize(
    "name,data",
    [
        ("a.csv.gz", gzip.compress(CSV)),
        ("a.csv.bz2", bz2.compress(CSV)),
        ("a.dat", gzip.compress(CSV)),
    ],
)
def test_compressed_files_are_detected_by_content(tmp_path: Path, name: str, data: bytes) -> None:
    assert _read(tmp_path, name, data)["time"] == ["2024-01-01T00:00:00Z"]


@pytest.mark.parametrize("sep", [b"\t", b";", b"|"])
def test_delimiter_is_sniffed(tmp_path: Path, sep: bytes) -> None:
    data = sep.join([b"t", b"v"]) + b"\n" + sep.join([b"2024-01-01", b"1,5"]) + b"\n"
    assert _read(tmp_path, "x.txt", data) == {"t": ["2024-01-01"], "v": ["1,5"]}


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    assert _read(tmp_path, "b.csv", b"\xef\xbb\xbft,v\r\n2024-01-01,1\r\n") == {
        "t": ["2024-01-01"],
        "v": ["1"],
    }


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
        (b"%PDF-1.4\n", "PDF"),
        (b"t,v\n1,2,3\n", "number of fields"),
        (b"t,v\n", "no rows"),
        (b"t,v\n2024,\xff\xfe\n", "UTF-8"),
    ],
)
def test_bad_input_is_unreadable_with_a_hint(tmp_path: Path, data: bytes, match: str) -> None:
    with pytest.raises(UnreadableFile) as info:
        _read(tmp_path, "bad.csv", data)
    assert match in f"{info.value.message} {info.value.hint}"
    assert not list((tmp_path / "staging").rglob("*.parquet"))  # nothing half-written stays
