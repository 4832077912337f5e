"""The delimited reader on files as instruments and spreadsheets write them: encodings, metadata
lines above the header, line endings, odd headers, ragged rows. Each case is bytes written to
tmp_path and read through format detection, as `sluice.read.run` reads it."""

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice import read
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile

Columns = list[list[str | None]]


def _open(
    tmp_path: Path, data: bytes, name: str = "data.csv", **rules: Any
) -> tuple[list[str], Columns]:
    """The source names and each column's values, read as `read.run` reads."""
    path = tmp_path / name
    path.write_bytes(data)
    source = read.detect_source(path)
    assert read.detect_format(source) == "delimited"
    opened = read.reader_for(source)(source, DatasetRules(name="t", **rules), 1000)
    batches = list(opened.batches)
    assert all(b.num_columns == len(opened.names) for b in batches)
    columns = [
        [v for b in batches for v in b.column(i).to_pylist()] for i in range(len(opened.names))
    ]
    return opened.names, columns


def _fail(tmp_path: Path, data: bytes, name: str = "data.csv", **rules: Any) -> UnreadableFile:
    with pytest.raises(UnreadableFile) as info:
        _open(tmp_path, data, name, **rules)
    return info.value


TABLE = "time,Temp (°C),Note\n2024-01-01T00:00:00Z,-1.5,Café\n2024-01-01T00:10:00Z,NA,ok\n"
EXPECTED = (
    ["time", "Temp (°C)", "Note"],
    [["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z"], ["-1.5", None], ["Café", "ok"]],
)


# Encodings


def test_utf16_le_with_bom(tmp_path: Path) -> None:
    data = TABLE.encode("utf-16-le")
    assert _open(tmp_path, b"\xff\xfe" + data) == EXPECTED


def test_utf16_be_with_bom(tmp_path: Path) -> None:
    data = TABLE.encode("utf-16-be")
    assert _open(tmp_path, b"\xfe\xff" + data) == EXPECTED


def test_utf16_le_without_bom_is_detected_by_its_nul_bytes(tmp_path: Path) -> None:
    assert _open(tmp_path, TABLE.encode("utf-16-le")) == EXPECTED


def test_utf16_be_without_bom_is_detected_by_its_nul_bytes(tmp_path: Path) -> None:
    assert _open(tmp_path, TABLE.encode("utf-16-be")) == EXPECTED


def test_cp1252_degree_sign_and_e_acute_are_detected(tmp_path: Path) -> None:
    data = TABLE.encode("cp1252")
    assert b"\xb0" in data and b"\xe9" in data  # not UTF-8
    assert _open(tmp_path, data) == EXPECTED


def test_cp1252_euro_sign_and_typographic_quotes(tmp_path: Path) -> None:
    data = "price,note\n5 €,“quoted”\n".encode("cp1252")
    assert _open(tmp_path, data) == (["price", "note"], [["5 €"], ["“quoted”"]])


def test_utf8_with_bom_and_crlf(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + TABLE.replace("\n", "\r\n").encode()
    assert _open(tmp_path, data) == EXPECTED


def test_declared_encoding_overrides_detection(tmp_path: Path) -> None:
    data = "name,v\nCafé,1\n".encode()  # valid UTF-8, declared Latin-1: read as Latin-1
    assert _open(tmp_path, data, encoding="latin-1") == (["name", "v"], [["CafÃ©"], ["1"]])


def test_declared_utf16_reads_a_file_without_bom(tmp_path: Path) -> None:
    data = "a,b\nx,y\n".encode("utf-16-be")
    assert _open(tmp_path, data, encoding="utf-16-be") == (["a", "b"], [["x"], ["y"]])


def test_unknown_encoding_name_is_unreadable_naming_it(tmp_path: Path) -> None:
    error = _fail(tmp_path, b"a,b\n1,2\n", encoding="klingon-8")
    assert "klingon-8" in error.message
    assert "encoding" in error.message and "datasets.yaml" in error.hint


def test_declared_encoding_that_cannot_read_a_late_byte_names_its_offset_and_line(
    tmp_path: Path,
) -> None:
    body = b"".join(b"%d,x\n" % i for i in range(300_000))  # ~2.4 MB: far past the head
    data = b"a,b\n" + body + b"9,\x81\n"  # 0x81 is undefined in cp1252
    error = _fail(tmp_path, data, encoding="cp1252")
    assert f"offset {len(data) - 2}" in error.message
    assert "line 300002" in error.message and "0x81" in error.message
    assert "encoding: cp1252" in error.hint


def _late(tmp_path: Path, head: bytes) -> tuple[bytes, int]:
    rows = b"".join(b"2024-01-01T00:00:%02dZ,%d.5\n" % (i % 60, i) for i in range(80_000))
    data = head + rows + b"2024-01-02T00:00:00Z,12 \xb0C\n"
    assert len(data) > 2_000_000
    return data, data.rindex(b"\xb0")


def test_non_utf8_byte_after_2mb_of_ascii_reads_the_file_as_cp1252(tmp_path: Path) -> None:
    """Only ASCII before it, which cp1252 reads as UTF-8 does: one pass, nothing re-read."""
    data, _ = _late(tmp_path, b"time,value\n")
    names, columns = _open(tmp_path, data)
    assert names == ["time", "value"]
    assert len(columns[1]) == 80_001
    assert columns[1][-1] == "12 °C" and columns[1][0] == "0.5"


def test_non_utf8_byte_after_2mb_of_utf8_text_names_offset_line_and_the_rule(
    tmp_path: Path,
) -> None:
    """The head holds UTF-8 (`°` as two bytes), so a lone 0xB0 later is an error, not a guess."""
    data, offset = _late(tmp_path, "time,value (°C)\n".encode())
    error = _fail(tmp_path, data)
    assert f"byte 0xB0 at offset {offset}, line 80002 is not UTF-8" == error.message
    assert "set `encoding` for dataset 't' in datasets.yaml" in error.hint


def test_first_non_ascii_after_the_head_valid_utf8_reads_as_utf8(tmp_path: Path) -> None:
    """A UTF-8 `é` cut by the 1 MB block boundary still decides UTF-8, not cp1252 mojibake."""
    head = b"n,text\n" + b"".join(b"%07d,x\n" % i for i in range(20_000))
    pad = (1 << 20) - 1 - len(head) - len(b"9,")  # the 2-byte `é` starts at offset 2**20 - 1
    data = head + b"9," + b"y" * pad + "é\n10,°C\n".encode()
    assert data.index("é".encode()) == (1 << 20) - 1
    names, columns = _open(tmp_path, data)
    assert columns[1][-2:] == ["y" * pad + "é", "°C"]


@pytest.mark.parametrize("gap", [10, 1_500_000])  # in the deciding block, or a later one
def test_utf8_after_the_head_then_a_byte_that_is_not_is_an_error(tmp_path: Path, gap: int) -> None:
    head = b"t,v\n" + b"".join(b"%07d,x\n" % i for i in range(20_000))
    data = head + "1,é\n".encode() + b"2," + b"z" * gap + b"\n3,\xb0\n"
    error = _fail(tmp_path, data)
    assert error.message == f"byte 0xB0 at offset {len(data) - 2}, line 20004 is not UTF-8"


def test_header_longer_than_the_64kb_head(tmp_path: Path) -> None:
    header = ",".join(f"sensor_{i:05d}" for i in range(8000))  # ~104 KB
    data = f"time,{header}\n2024-01-01,{','.join('1' * 8000)}\n".encode()
    names, columns = _open(tmp_path, data)
    assert len(names) == 8001 and names[-1] == "sensor_07999"
    assert columns[-1] == ["1"]


def test_utf16_byte_order_mark_inside_a_file_is_not_guessed_as_cp1252(tmp_path: Path) -> None:
    error = _fail(tmp_path, b"t,v\n2024,\xff\xfe\n")
    assert "UTF-16 byte-order mark at offset 9" in error.message
    assert "encoding" in error.hint


def test_utf16_recoding_across_block_boundaries(tmp_path: Path) -> None:
    """Characters outside the BMP (surrogate pairs) cut by 1 MB blocks come out whole."""
    rows = [f"{i},😀 é {i}\n" for i in range(120_000)]
    data = ("n,text\n" + "".join(rows)).encode("utf-16")
    assert len(data) > 3 * (1 << 20)
    names, columns = _open(tmp_path, data)
    assert names == ["n", "text"]
    assert columns[1] == [f"😀 é {i}" for i in range(120_000)]


def test_gzip_compressed_utf16(tmp_path: Path) -> None:
    data = gzip.compress(TABLE.encode("utf-16"))
    assert _open(tmp_path, data, "export.csv.gz") == EXPECTED


# Metadata lines above the header


def test_comment_blank_and_shorter_metadata_lines_are_skipped(tmp_path: Path) -> None:
    data = (
        b"# Station: Alpha\n"
        b"# Logger: CR1000\n"
        b"\n"
        b"Exported: 2024-01-02 10:00\n"
        b"\n"
        b"time,temp,rh\n"
        b"2024-01-01T00:00:00Z,1.5,80\n"
        b"2024-01-01T00:10:00Z,1.6,81\n"
    )
    names, columns = _open(tmp_path, data)
    assert names == ["time", "temp", "rh"]
    assert columns == [
        ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z"],
        ["1.5", "1.6"],
        ["80", "81"],
    ]


def test_key_value_metadata_lines_with_fewer_fields_are_skipped(tmp_path: Path) -> None:
    data = b"Station,Alpha\nLatitude,47.37\n\ntime,temp,rh\n2024-01-01,1.5,80\n2024-01-02,2.5,81\n"
    names, columns = _open(tmp_path, data)
    assert names == ["time", "temp", "rh"]
    assert columns[0] == ["2024-01-01", "2024-01-02"]


def test_excel_sep_line_names_the_delimiter(tmp_path: Path) -> None:
    data = b"sep=;\nt;v;w\n2024-01-01;1,5;a,b\n"  # commas in every value: only the hint tells
    assert _open(tmp_path, data) == (["t", "v", "w"], [["2024-01-01"], ["1,5"], ["a,b"]])


def test_semicolon_with_decimal_commas_stays_text(tmp_path: Path) -> None:
    data = b"time;temp;rh\n2024-01-01;1,5;80,25\n2024-01-02;2,5;81\n"
    names, columns = _open(tmp_path, data)
    assert names == ["time", "temp", "rh"]
    assert columns == [["2024-01-01", "2024-01-02"], ["1,5", "2,5"], ["80,25", "81"]]


def test_explicit_skip_rows(tmp_path: Path) -> None:
    data = b"a,b\nc,d\nt,v\n2024-01-01,1\n"  # detection alone would take `a,b` as the header
    assert _open(tmp_path, data, skip_rows=2) == (["t", "v"], [["2024-01-01"], ["1"]])


def test_explicit_skip_rows_zero_keeps_a_comment_like_header(tmp_path: Path) -> None:
    data = b"#time,value\n2024-01-01,1\n"
    assert _open(tmp_path, data, skip_rows=0) == (["#time", "value"], [["2024-01-01"], ["1"]])


def test_header_false_names_columns_by_position(tmp_path: Path) -> None:
    data = b"# no header\n2024-01-01,1,x\n2024-01-02,2,y\n"
    names, columns = _open(tmp_path, data, header=False)
    assert names == ["column_1", "column_2", "column_3"]
    assert columns == [["2024-01-01", "2024-01-02"], ["1", "2"], ["x", "y"]]


def test_header_false_with_skip_rows(tmp_path: Path) -> None:
    data = b"junk\nmore junk\n1,2\n3,4\n"
    assert _open(tmp_path, data, header=False, skip_rows=2) == (
        ["column_1", "column_2"],
        [["1", "3"], ["2", "4"]],
    )


def test_header_above_rows_ending_in_a_delimiter_is_kept(tmp_path: Path) -> None:
    data = b"t,v\n2024-01-01,1,\n2024-01-02,2,\n"
    names, columns = _open(tmp_path, data)
    assert names == ["t", "v", ""]
    assert columns == [["2024-01-01", "2024-01-02"], ["1", "2"], [None, None]]


# Line endings and quoting


def test_cr_only_line_endings(tmp_path: Path) -> None:
    data = b'# old Mac export\rt,v\r2024-01-01,"a\rb"\r2024-01-02,2\r'
    assert _open(tmp_path, data) == (["t", "v"], [["2024-01-01", "2024-01-02"], ["a\rb", "2"]])


def test_crlf_line_endings(tmp_path: Path) -> None:
    data = b"Exported\r\nt,v\r\n2024-01-01,1\r\n2024-01-02,2\r\n"
    assert _open(tmp_path, data) == (["t", "v"], [["2024-01-01", "2024-01-02"], ["1", "2"]])


def test_quoted_delimiters_quotes_newlines_and_whitespace_are_kept(tmp_path: Path) -> None:
    data = b'"a,b",c\n"x, ""y""\nz",  padded  \n'
    assert _open(tmp_path, data) == (["a,b", "c"], [['x, "y"\nz'], ["  padded  "]])


def test_quoted_newline_in_the_header_below_metadata(tmp_path: Path) -> None:
    data = b'# meta\n"Temp\n(C)",t\n1,2024-01-01\n'
    assert _open(tmp_path, data) == (["Temp\n(C)", "t"], [["1"], ["2024-01-01"]])


# Odd headers


def test_duplicate_and_empty_header_names(tmp_path: Path) -> None:
    data = b"t,v,v,,\n2024-01-01,1,2,3,4\n"
    assert _open(tmp_path, data) == (
        ["t", "v", "v", "", ""],
        [["2024-01-01"], ["1"], ["2"], ["3"], ["4"]],
    )


def test_duplicate_and_empty_header_names_stage_under_unique_names(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_bytes(b"t,v,v,\n2024-01-01,1,2,3\n")
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    table = pq.read_table(read.run(ref, DatasetRules(name="t"), tmp_path / "staging", 100).uri)
    assert read.source_names(table.schema) == ["t", "v", "v", ""]
    assert len(set(table.column_names)) == 4
    assert [table.column(i).to_pylist() for i in range(4)] == [["2024-01-01"], ["1"], ["2"], ["3"]]


# Ragged rows


def test_short_row_names_its_line_and_the_counts(tmp_path: Path) -> None:
    data = b"# meta\nt,v,w\n2024-01-01,1,2\n\n2024-01-02,1\n2024-01-03,1,2\n"
    error = _fail(tmp_path, data)
    assert error.message == "line 5 has 2 fields where the header has 3"
    assert "number of fields" in error.hint


def test_long_row_after_a_multiline_value_names_its_line(tmp_path: Path) -> None:
    rows = b"".join(b"2024-01-01,%d\n" % i for i in range(5000))  # in a later block
    data = b't,v\n2024-01-01,"a\nb"\n' + rows + b"2024-01-02,1,2\n"
    error = _fail(tmp_path, data)
    assert error.message == "line 5004 has 3 fields where the header has 2"


def test_long_second_row_of_a_two_line_file_is_an_error_not_a_header(tmp_path: Path) -> None:
    error = _fail(tmp_path, b"t,v\n1,2,3\n")
    assert error.message == "line 2 has 3 fields where the header has 2"


def test_short_row_in_a_utf16_file_names_its_line(tmp_path: Path) -> None:
    error = _fail(tmp_path, "t,v\nä,1\nö\n".encode("utf-16"))
    assert error.message == "line 3 has 1 field where the header has 2"


def test_only_metadata_lines_is_unreadable(tmp_path: Path) -> None:
    error = _fail(tmp_path, b"# nothing\n\n# here\n")
    assert "no header" in error.message


# Any table, any encoding


_TEXT = st.text(alphabet=st.sampled_from(list("abcXYZ019 ,.\"'\n-_°éüß€")), min_size=0, max_size=8)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(_TEXT, min_size=2, max_size=5),
    data=st.data(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "cp1252"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_table_round_trips(
    tmp_path: Path, header: list[str], data: st.DataObject, encoding: str, newline: str
) -> None:
    rows = data.draw(
        st.lists(
            st.lists(_TEXT, min_size=len(header), max_size=len(header)), min_size=1, max_size=5
        )
    )
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator=newline, quoting=csv.QUOTE_ALL).writerows([header, *rows])
    raw = text.getvalue().encode(encoding)
    names, columns = _open(tmp_path, raw, encoding=encoding, skip_rows=0, null_values=())
    assert names == header
    assert columns == [list(column) for column in zip(*rows, strict=True)]


_NAME = st.text(alphabet=st.sampled_from(list("abcxyz_ °é")), min_size=1, max_size=6)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(_NAME, min_size=2, max_size=5),
    data=st.data(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "cp1252"]),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    metadata=st.sampled_from(["", "# Station: X\n", "Exported 2024-01-01\n\n", "sep=,\n"]),
)
def test_any_table_round_trips_with_everything_detected(
    tmp_path: Path,
    header: list[str],
    data: st.DataObject,
    encoding: str,
    newline: str,
    metadata: str,
) -> None:
    width = len(header)
    rows = data.draw(st.lists(st.lists(_TEXT, min_size=width, max_size=width), min_size=3))
    text = io.StringIO(newline="")
    text.write(metadata.replace("\n", newline))
    csv.writer(text, lineterminator=newline, quoting=csv.QUOTE_ALL).writerows([header, *rows])
    names, columns = _open(tmp_path, text.getvalue().encode(encoding), null_values=())
    assert names == header
    assert columns == [list(column) for column in zip(*rows, strict=True)]
