"""Delimited files as instruments and services export them (issue 14): metadata lines padded to
the table's width, a footer of notes below the rows, rows that leave out trailing empty fields.
Each layout is reproduced here with generated values (no file fetched from anywhere), and read
through format detection as `sluice.read.run` reads it."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice import read
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Notes
from sluice.read.readers.footer import HOLD_MAX, may_end_in_footer

Columns = list[list[str | None]]


def _open(
    tmp_path: Path, data: bytes, name: str = "data.csv", batch_rows: int = 1000, **rules: Any
) -> tuple[list[str], Columns, Notes]:
    """The source names, each column's values and the reader's notes, read as `read.run` does."""
    path = tmp_path / name
    path.write_bytes(data)
    source = read.detect_source(path)
    opened = read.reader_for(source)(source, DatasetRules(name="t", **rules), batch_rows)
    batches = list(opened.batches)
    columns = [
        [v for b in batches for v in b.column(i).to_pylist()] for i in range(len(opened.names))
    ]
    return opened.names, columns, opened.notes


def _fail(tmp_path: Path, data: bytes, **rules: Any) -> UnreadableFile:
    with pytest.raises(UnreadableFile) as info:
        _open(tmp_path, data, **rules)
    return info.value


def _guess(notes: Notes, what: str) -> str:
    [detail] = [g.detail for g in notes.guesses if g.what == what]
    return detail


# Metadata lines padded to the table's width


KEYS = ["Source", "Location ID", "Latitude", "Longitude", "Time Zone", "Elevation", "Version"]
VALUES = ["NSRDB", "1234", "40.5", "-108.5", "-7", "2168", "v3"]
HEADER = ["Year", "Month", "Day", "Hour", "Minute", "GHI"]


def _nsrdb(rows: int = 4) -> bytes:
    """Line 1 metadata keys, line 2 their values, line 3 the header; the short lines padded
    with empty fields to the longest one's width, as NSRDB PSM3 exports are."""
    width = len(KEYS)
    lines = [KEYS, VALUES, HEADER + [""] * (width - len(HEADER))]
    for i in range(rows):
        row = ["2017", "1", "1", str(i // 2), str(30 * (i % 2)), str(10 * i)]
        lines.append(row + [""] * (width - len(row)))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(lines)
    return text.getvalue().encode()


def test_padded_metadata_keys_and_values_above_the_header_are_kept_not_read_as_the_header(
    tmp_path: Path,
) -> None:
    names, columns, notes = _open(tmp_path, _nsrdb())

    assert names[: len(HEADER)] == HEADER
    assert set(names[len(HEADER) :]) == {""}  # unnamed, empty: infer_schema leaves them out
    assert columns[0] == ["2017"] * 4 and columns[4] == ["0", "30", "0", "30"]
    assert all(v is None for column in columns[len(HEADER) :] for v in column)
    assert notes.preamble == (",".join(KEYS), ",".join(VALUES))
    assert ("Time Zone", "-7") in notes.fields and ("Source", "NSRDB") in notes.fields
    assert _guess(notes, "header") == "header on line 3, 2 metadata lines kept"


def test_one_padded_metadata_line_that_names_fewer_fields_than_the_rows_fill(
    tmp_path: Path,
) -> None:
    """SolarAnywhere's TMY3 format: a station line padded to the table's width with commas."""
    header = ["Date (MM/DD/YYYY)", "Time (HH:MM)", "GHI (W/m^2)", "DNI (W/m^2)", "Flag"]
    data = (
        "0,Burlington,NA,-5,,\n"
        + ",".join(header)
        + ",\n"
        + "".join(f"01/01/2021,{h:02d}:00,{h},{2 * h},,\n" for h in range(1, 6))
    ).encode()

    names, columns, notes = _open(tmp_path, data)

    assert names == [*header, ""]
    assert columns[1] == ["01:00", "02:00", "03:00", "04:00", "05:00"]
    assert notes.preamble == ("0,Burlington,NA,-5,,",)


def test_key_value_lines_and_a_small_table_above_the_header(tmp_path: Path) -> None:
    """PVGIS TMY: `key: value` lines, a month/year table, then the header."""
    months = "".join(f"{m},{2005 + m}\n" for m in range(1, 13))
    data = (
        "Latitude (decimal degrees): 45.000\nElevation (m): 250.0\nmonth,year\n"
        + months
        + "time(UTC),T2m,RH\n"
        + "".join(f"201801{d:02d}:0000,{d}.5,90\n" for d in range(1, 21))
    ).encode()

    names, columns, notes = _open(tmp_path, data)

    assert names == ["time(UTC)", "T2m", "RH"]
    assert len(columns[0]) == 20
    assert notes.fields[:2] == (
        ("Latitude (decimal degrees)", "45.000"),
        ("Elevation (m)", "250.0"),
    )
    assert _guess(notes, "header") == "header on line 16, 15 metadata lines kept"


def test_header_row_rule_overrides_the_detected_header(tmp_path: Path) -> None:
    names, columns, notes = _open(tmp_path, _nsrdb(), header_row=1)

    assert names == KEYS
    assert columns[0][:2] == ["NSRDB", "Year"]
    assert not [g for g in notes.guesses if g.what == "header"]  # the rule decided


def test_rows_below_metadata_without_a_line_of_names_refuse_the_file_naming_the_candidates(
    tmp_path: Path,
) -> None:
    data = b"Station,Alpha\nLatitude,47.37\n2024-01-01,1,2\n2024-01-02,3,4\n2024-01-03,5,6\n"

    error = _fail(tmp_path, data)

    assert "line 1 ('Station,Alpha')" in error.message
    assert "line 3 ('2024-01-01,1,2')" in error.message and "looks like data" in error.message
    assert "header_row" in error.hint and "header: false" in error.hint


def test_a_first_line_of_data_is_not_taken_for_the_header(tmp_path: Path) -> None:
    data = b"2024-01-01,1.5,80\n2024-01-02,1.6,81\n2024-01-03,1.7,82\n"

    error = _fail(tmp_path, data)

    assert error.message == (
        "the header is not certain: line 1 ('2024-01-01,1.5,80') looks like data (numbers, "
        "dates), not names"
    )
    assert "`header: false`" in error.hint
    assert _open(tmp_path, data, header=False)[1][0] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert _open(tmp_path, data, header_row=1)[0] == ["2024-01-01", "1.5", "80"]  # as told


def test_the_same_rows_load_with_the_rules_that_say_where_they_start(tmp_path: Path) -> None:
    data = b"Station,Alpha\nLatitude,47.37\n2024-01-01,1,2\n2024-01-02,3,4\n2024-01-03,5,6\n"

    names, columns, _ = _open(tmp_path, data, header=False, skip_rows=2)

    assert names == ["column_1", "column_2", "column_3"]
    assert columns[0] == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_delimiter_rule_overrides_detection(tmp_path: Path) -> None:
    data = b"a;b,c\n1;2,3\n4;5,6\n"
    assert _open(tmp_path, data)[0] == ["a;b", "c"]
    assert _open(tmp_path, data, delimiter=";")[0] == ["a", "b,c"]


# A footer below the rows


FOOTER = (
    "\nT2m: 2-m air temperature (degree Celsius)\nRH: relative humidity (%)\n"
    "\nPVGIS (c) EU, 2001-2025\n"
)


def _table(rows: int, *, start: int = 0) -> str:
    return "time,t2m,rh\n" + "".join(
        f"2018-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00,{i}.5,{i % 100}\n"
        for i in range(start, start + rows)
    )


def test_a_blank_line_and_notes_after_the_rows_are_a_footer_kept_as_metadata(
    tmp_path: Path,
) -> None:
    names, columns, notes = _open(tmp_path, (_table(5) + FOOTER).encode())

    assert names == ["time", "t2m", "rh"]
    assert columns[1] == ["0.5", "1.5", "2.5", "3.5", "4.5"]
    assert notes.footer == (
        "T2m: 2-m air temperature (degree Celsius)",
        "RH: relative humidity (%)",
        "PVGIS (c) EU, 2001-2025",
    )
    assert _guess(notes, "footer") == "3 lines after the rows left out, kept as metadata"


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_a_footer_after_crlf_or_cr_lines(tmp_path: Path, newline: str) -> None:
    data = (_table(3) + FOOTER).replace("\n", newline).encode()

    _, columns, notes = _open(tmp_path, data)

    assert columns[1] == ["0.5", "1.5", "2.5"]
    assert notes.footer[-1] == "PVGIS (c) EU, 2001-2025"


def test_a_footer_far_into_a_compressed_file_is_cut_as_the_file_streams(tmp_path: Path) -> None:
    """Several read blocks of rows (1 MiB each) before the footer, through gzip: no seeking."""
    data = gzip.compress((_table(60_000) + FOOTER).encode(), mtime=0)

    names, columns, notes = _open(tmp_path, data, name="big.csv.gz")

    assert len(columns[0]) == 60_000 and columns[1][-1] == "59999.5"
    assert len(notes.footer) == 3


def test_a_footer_far_into_a_plain_file_is_cut_and_its_tail_says_so(tmp_path: Path) -> None:
    """Past the tail that decides whether a plain file needs footer detection (2 MiB)."""
    path = tmp_path / "big.csv"
    path.write_bytes((_table(100_000) + FOOTER).encode())
    assert path.stat().st_size > 2 * HOLD_MAX and may_end_in_footer(path)

    names, columns, notes = _open(tmp_path, path.read_bytes(), name="big.csv")

    assert len(columns[0]) == 100_000 and columns[1][-1] == "99999.5"
    assert len(notes.footer) == 3


def test_a_plain_file_whose_tail_has_no_blank_line_is_read_as_it_is(tmp_path: Path) -> None:
    """A blank line far before the end (rows after it) cannot start a footer: no detection,
    and the rows are those detection would have given."""
    head = _table(1_000) + "\n"
    path = tmp_path / "plain.csv"
    path.write_bytes((head + _table(100_000, start=1_000).split("\n", 1)[1]).encode())
    assert not may_end_in_footer(path)

    _, columns, notes = _open(tmp_path, path.read_bytes(), name="plain.csv")

    assert len(columns[0]) == 101_000 and columns[1][-1] == "100999.5"
    assert notes.footer == ()


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("", False),  # rows to the end
        ("\n", True),  # a blank line last
        ("\n" + "note\n" * 100_000, True),  # a footer of 500 kB: within the tail
        ("\n" + "1,2,3\n" * 400_000, False),  # 2.4 MB of rows after the blank line
    ],
)
def test_the_tail_that_decides_whether_a_footer_may_follow(
    tmp_path: Path, ending: str, expected: bool
) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes((_table(40_000) + ending).encode())
    assert may_end_in_footer(path) is expected


def test_rows_after_a_blank_line_are_rows_not_a_footer(tmp_path: Path) -> None:
    data = (_table(2) + "\n\n" + _table(2, start=2).split("\n", 1)[1]).encode()

    _, columns, notes = _open(tmp_path, data)

    assert columns[1] == ["0.5", "1.5", "2.5", "3.5"]
    assert notes.footer == ()


def test_a_blank_line_inside_a_quoted_last_value_is_not_a_footer(tmp_path: Path) -> None:
    data = b't,note\n2024-01-01,"one\n\ntwo"\n'

    _, columns, notes = _open(tmp_path, data)

    assert columns == [["2024-01-01"], ["one\n\ntwo"]]
    assert notes.footer == ()


def test_skip_footer_fixes_the_footer_lines(tmp_path: Path) -> None:
    data = (_table(4) + "total,6\n").encode()  # no blank line: not detected

    _, columns, notes = _open(tmp_path, data, skip_footer=1)

    assert columns[1] == ["0.5", "1.5", "2.5", "3.5"]
    assert notes.footer == ("total,6",)


def test_skip_footer_zero_reads_the_lines_after_a_blank_line_as_rows(tmp_path: Path) -> None:
    error = _fail(tmp_path, (_table(3) + FOOTER).encode(), skip_footer=0)
    assert error.message == "line 6 has 1 field where the header has 3"


# Rows that leave out trailing empty fields


RAGGED = b"t,a,b,c\n2024-01-01,1,2,3\n2024-01-02,4\n2024-01-03,5,6\n2024-01-04,7,8,9\n"


def test_short_rows_refuse_the_file_pointing_at_ragged_pad(tmp_path: Path) -> None:
    error = _fail(tmp_path, RAGGED)

    assert error.message == "line 3 has 2 fields where the header has 4"
    assert "`ragged: pad` for dataset 't'" in error.hint


def test_ragged_pad_reads_missing_trailing_fields_as_null_in_the_rows_order(
    tmp_path: Path,
) -> None:
    names, columns, notes = _open(tmp_path, RAGGED, ragged="pad")

    assert names == ["t", "a", "b", "c"]
    assert columns == [
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        ["1", "4", "5", "7"],
        ["2", None, "6", "8"],
        ["3", None, None, "9"],
    ]
    assert _guess(notes, "ragged rows").startswith("2 short rows read with nulls")


def test_ragged_pad_keeps_the_order_across_blocks_and_at_the_end(tmp_path: Path) -> None:
    lines = [f"2024-01-01,{i},x,y" if i % 997 else f"2024-01-01,{i}" for i in range(1, 40_001)]
    data = ("t,i,a,b\n" + "\n".join(lines) + "\n2024-01-02,last\n").encode()

    _, columns, notes = _open(tmp_path, data, batch_rows=5000, ragged="pad")

    assert columns[1] == [str(i) for i in range(1, 40_001)] + ["last"]
    assert columns[2][996] is None and columns[2][997] == "x" and columns[2][-1] is None
    assert _guess(notes, "ragged rows").startswith("41 short rows")


def test_ragged_pad_still_refuses_a_long_row(tmp_path: Path) -> None:
    error = _fail(tmp_path, b"t,a\n2024-01-01,1\n2024-01-02,2,3\n", ragged="pad")
    assert error.message == "line 3 has 3 fields where the header has 2"
    assert "(more)" in error.hint


# Any table, with any preamble and footer of text around it


_WORD = st.text(alphabet=st.sampled_from(list("abcXYZ019 .:=#-_()%/")), min_size=1, max_size=12)
_NAME = st.text(alphabet=st.sampled_from(list("abcdxyz_")), min_size=1, max_size=6)
_VALUE = st.text(alphabet=st.sampled_from(list('abcXYZ019 .,"-')), min_size=0, max_size=6)
_LINE = st.one_of(
    _WORD,  # free text, one field
    st.builds(lambda k, v: f"{k}: {v}", _WORD, _WORD),
    st.builds(lambda w: f"# {w}", _WORD),
    st.just(""),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.lists(_NAME, min_size=2, max_size=5, unique=True),
    data=st.data(),
    preamble=st.lists(_LINE, max_size=6),
    footer=st.lists(_WORD, max_size=4),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_a_preamble_and_a_footer_of_text_never_change_the_rows_loaded(
    tmp_path: Path,
    header: list[str],
    data: st.DataObject,
    preamble: list[str],
    footer: list[str],
    newline: str,
) -> None:
    width = len(header)
    row = st.tuples(st.integers(0, 10**6), st.lists(_VALUE, min_size=width - 1, max_size=width - 1))
    rows = [[str(n), *rest] for n, rest in data.draw(st.lists(row, min_size=3, max_size=25))]
    text = io.StringIO(newline="")
    text.write("".join(line + newline for line in preamble))
    csv.writer(text, lineterminator=newline).writerows([header, *rows])
    if footer:
        text.write(newline + "".join(line + newline for line in footer))

    names, columns, _ = _open(tmp_path, text.getvalue().encode(), null_values=())

    assert names == header
    assert columns == [list(column) for column in zip(*rows, strict=True)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    keys=st.lists(_NAME, min_size=4, max_size=8, unique=True),
    values=st.data(),
    rows=st.lists(st.integers(0, 10**6), min_size=3, max_size=20),
    header=st.lists(_NAME, min_size=2, max_size=3, unique=True),
)
def test_padded_metadata_of_any_width_never_changes_the_rows_loaded(
    tmp_path: Path,
    keys: list[str],
    values: st.DataObject,
    rows: list[int],
    header: list[str],
) -> None:
    """Keys and values lines wider than the table (a value for every key), every line padded
    to the widest."""
    value = st.text(alphabet=st.sampled_from(list("abcXYZ019.:-")), min_size=1, max_size=8)
    line_values = values.draw(st.lists(value, min_size=len(keys), max_size=len(keys)))
    wide = len(keys)
    table = [[*header, *[""] * (wide - len(header))]]
    table += [
        [str(n), *[str(n % 7)] * (len(header) - 1), *[""] * (wide - len(header))] for n in rows
    ]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([keys, line_values, *table])

    names, columns, notes = _open(tmp_path, text.getvalue().encode(), null_values=())

    assert names[: len(header)] == header
    assert columns[0] == [str(n) for n in rows]
    assert notes.fields[: len(keys)] == tuple(zip(keys, line_values, strict=True))
