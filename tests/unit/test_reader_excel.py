import datetime as dt
import gzip
import zipfile
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice import read
from sluice.contracts import FileRef
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Opened, Source
from sluice.read.readers.excel import open_excel

RULES = DatasetRules(name="t")


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def _open(path: Path, rules: DatasetRules = RULES, batch_rows: int = 1000) -> Opened:
    source = read.detect_source(path)
    return read.reader_for(source)(source, rules, batch_rows)


def _columns(opened: Opened) -> dict[str, list[object]]:
    batches = list(opened.batches)
    assert all(b.schema.types == [pa.string()] * len(opened.names) for b in batches)
    table = pa.Table.from_batches(batches) if batches else None
    return dict(zip(opened.names, table.to_pydict().values(), strict=True)) if table else {}


HEADER = ["id", "x", "big", "flag", "day", "at", "clock", "note", "empty", "err"]


def _typed_rows() -> list[list[object]]:
    return [
        HEADER,
        [
            1,
            2.5,
            1e20,
            True,
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4, 5),
            dt.time(12, 30),
        ],
        [42.0, -0.1, None, False, dt.date(1999, 12, 31), dt.datetime(2024, 1, 2, 3, 4, 5, 250000)],
        [None, None, None, None, None, None, None, "NA", None, None],
    ]


def test_cells_are_rendered_as_text_inference_reads(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"Data": _typed_rows()})
    book = openpyxl.load_workbook(path)  # error cells, as Excel stores a failed formula's result
    for cell in ("J2", "J3"):
        book["Data"][cell].value = "#DIV/0!" if cell == "J2" else "#N/A"
        book["Data"][cell].data_type = "e"
    book["Data"]["H2"] = "plain text"
    book.save(path)
    opened = _open(path)
    assert opened.names == HEADER
    assert _columns(opened) == {
        "id": ["1", "42", None],
        "x": ["2.5", "-0.1", None],
        "big": ["1e+20", None, None],
        "flag": ["true", "false", None],
        "day": ["2024-01-02", "1999-12-31", None],
        "at": ["2024-01-02T03:04:05", "2024-01-02T03:04:05.250000", None],
        "clock": ["12:30:00", None, None],
        "note": ["plain text", None, None],  # "NA" is a missing-value marker
        "empty": [None, None, None],
        "err": [None, None, None],
    }


def test_midnight_datetimes_read_as_dates(tmp_path: Path) -> None:
    """calamine returns a date for a datetime cell at midnight: the number format is not seen."""
    rows: list[list[object]] = [["at"], [dt.datetime(2024, 1, 1)], [dt.datetime(2024, 1, 1, 6)]]
    path = _workbook(tmp_path / "t.xlsx", {"S": rows})
    assert _columns(_open(path)) == {"at": ["2024-01-01", "2024-01-01T06:00:00"]}


def test_durations_read_as_hours_minutes_seconds(tmp_path: Path) -> None:
    rows: list[list[object]] = [["d"], [dt.timedelta(hours=1)], [dt.timedelta(days=1, seconds=1)]]
    path = _workbook(tmp_path / "t.xlsx", {"S": rows})
    assert _columns(_open(path)) == {"d": ["01:00:00", "24:00:01"]}


def test_rules_sheet_selects_a_sheet(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"First": [["a"], [1]], "Second": [["b"], ["x"]]})
    assert _columns(_open(path)) == {"a": ["1"]}
    assert _columns(_open(path, DatasetRules(name="t", sheet="Second"))) == {"b": ["x"]}


def test_rules_sheet_selects_a_sheet_by_its_0_based_index(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"First": [["a"], [1]], "Second": [["b"], ["x"]]})
    assert _columns(_open(path, DatasetRules(name="t", sheet=1))) == {"b": ["x"]}
    with pytest.raises(UnreadableFile, match="no sheet 2 .0-based.; the workbook has 2"):
        _open(path, DatasetRules(name="t", sheet=2))


def test_missing_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"First": [["a"], [1]], "Second": [["b"], [2]]})
    with pytest.raises(UnreadableFile, match="'First', 'Second'") as info:
        _open(path, DatasetRules(name="t", sheet="Third"))
    assert "sheet" in info.value.hint


def test_headerless_sheet_is_numbered(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [[1, "a"], [2, "b"]]})
    opened = _open(path, DatasetRules(name="t", header=False))
    assert _columns(opened) == {"column_1": ["1", "2"], "column_2": ["a", "b"]}


def test_ragged_rows_and_empty_rows(tmp_path: Path) -> None:
    rows: list[list[object]] = [[], ["a", None, "c"], [1], [], [1, 2, 3, 4], [None, None]]
    path = _workbook(tmp_path / "t.xlsx", {"S": rows})
    assert _columns(_open(path)) == {
        "a": ["1", "1"],
        "column_2": [None, "2"],
        "c": [None, "3"],
        "column_4": [None, "4"],
    }


def test_rows_stream_in_batches(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [["n"], *([i] for i in range(10))]})
    batches = list(_open(path, batch_rows=3).batches)
    assert [b.num_rows for b in batches] == [3, 3, 3, 1]


def test_header_only_and_empty_sheet_yield_no_batches(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"H": [["a", "b"]], "E": []})
    header_only = _open(path)
    assert (header_only.names, list(header_only.batches)) == (["a", "b"], [])
    empty = _open(path, DatasetRules(name="t", sheet="E"))
    assert (empty.names, list(empty.batches)) == ([], [])


def test_compressed_workbook_is_spooled(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [["a"], [1.5]]})
    packed = tmp_path / "t.xlsx.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert _columns(_open(packed)) == {"a": ["1.5"]}


def test_corrupt_sheet_xml_is_unreadable(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [["a"], [1]]})
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(path) as good, zipfile.ZipFile(broken, "w") as bad:
        for item in good.infolist():
            data = good.read(item)
            bad.writestr(item, data[: len(data) // 2] if "worksheets/" in item.filename else data)
    with pytest.raises(UnreadableFile, match="malformed Excel") as info:
        list(_open(broken).batches)
    assert info.value.hint


def test_truncated_workbook_is_unreadable(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [["a"], [1]]})
    path.write_bytes(path.read_bytes()[:-200])  # the zip's central directory is gone
    with pytest.raises(UnreadableFile, match="malformed Excel"):
        open_excel(Source(path=path, name=path.name), RULES, 100)


def test_read_run_stages_a_workbook(tmp_path: Path) -> None:
    rows: list[list[object]] = [["Time", "Temp (C)"], [dt.datetime(2024, 1, 1, 6), 20.5]]
    path = _workbook(tmp_path / "in.xlsx", {"S": rows})
    file_id, size = read.fingerprint(path)
    ref = FileRef(path=str(path), file_id=file_id, dataset="t", size=size, rules_hash="x")
    staged = pq.read_table(read.run(ref, RULES, tmp_path / "staging", 100).uri)
    assert staged.to_pydict() == {"time": ["2024-01-01T06:00:00"], "temp_c": ["20.5"]}
    assert read.source_names(staged.schema) == ["Time", "Temp (C)"]


def test_title_rows_above_the_header_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "titled.xlsx"
    rows = [
        ["Monthly report"],
        [],
        ["Exported by X", None],
        ["t", "v", "note"],
        [dt.date(2024, 1, 1), 1, "a"],
        [dt.date(2024, 1, 2), 2, None],
    ]
    opened = _open(_workbook(path, {"Sheet": rows}))
    assert opened.names == ["t", "v", "note"]
    assert _columns(opened) == {
        "t": ["2024-01-01", "2024-01-02"],
        "v": ["1", "2"],
        "note": ["a", None],
    }


def test_skip_rows_overrides_title_detection(tmp_path: Path) -> None:
    path = tmp_path / "skip.xlsx"
    _workbook(path, {"Sheet": [["a", "b"], ["t", "v"], ["2024-01-01", "1"]]})
    assert _open(path, DatasetRules(name="x", skip_rows=1)).names == ["t", "v"]


# Workbooks as they come (issue 14)


def _merged(path: Path) -> Path:
    """A cover sheet, then the data below a title row under a header of merged cells: `Date`
    and `Note` merged down over two rows, `Temperature` across `min` and `max`."""
    book = openpyxl.Workbook()
    book.active.title = "Cover"
    sheet = book.create_sheet("Data")
    for row in (
        [],
        ["Station 7, January"],
        ["Date", "Temperature", None, "Note"],
        [None, "min", "max", None],
        [dt.date(2024, 1, 1), -1.5, 4, "ok"],
        [dt.date(2024, 1, 2), -3, 2.5, None],
    ):
        sheet.append(row)
    for cells in ("A3:A4", "B3:C3", "D3:D4"):
        sheet.merge_cells(cells)
    book.save(path)
    return path


def test_data_on_a_later_sheet_under_a_merged_header_reads_with_joined_names(
    tmp_path: Path,
) -> None:
    opened = _open(_merged(tmp_path / "t.xlsx"))

    assert _columns(opened) == {
        "Date": ["2024-01-01", "2024-01-02"],
        "Temperature min": ["-1.5", "-3"],
        "Temperature max": ["4", "2.5"],
        "Note": ["ok", None],
    }
    guesses = {g.detail: g.rule for g in opened.notes.guesses}
    assert guesses["sheet 'Data', the first with a table (not 'Cover')"] == "sheet: Data"
    assert "header on row 3 of sheet 'Data', 1 title row kept" in guesses
    assert "merged header cells over rows 3-4: names joined" in guesses
    assert opened.notes.preamble == ("Station 7, January",)


def test_a_header_merged_across_above_a_row_of_names_spans_both_rows(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Site", "Wind", None], [None, "speed", "direction"], ["A", 3.5, 270]):
        sheet.append(row)
    sheet.merge_cells("B1:C1")
    book.save(tmp_path / "t.xlsx")

    assert _columns(_open(tmp_path / "t.xlsx")) == {
        "Site": ["A"],
        "Wind speed": ["3.5"],
        "Wind direction": ["270"],
    }


def test_header_row_names_the_sheets_row(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"S": [["a", "b"], ["x", "y"], [1, 2]]})
    assert _columns(_open(path, DatasetRules(name="t", header_row=2))) == {"x": ["1"], "y": ["2"]}


def test_every_sheet_as_one_table_with_the_union_of_columns_and_the_sheet(
    tmp_path: Path,
) -> None:
    path = _workbook(
        tmp_path / "t.xlsx",
        {
            "Jan": [["t", "v"], ["2024-01-01", 1]],
            "Empty": [],
            "Feb": [["t", "w"], ["2024-02-01", 2]],
        },
    )

    opened = _open(path, DatasetRules(name="t", sheet="*"))

    assert _columns(opened) == {
        "sheet": ["Jan", "Feb"],
        "t": ["2024-01-01", "2024-02-01"],
        "v": ["1", None],
        "w": [None, "2"],
    }


def test_a_cover_sheet_of_lines_is_not_taken_for_the_table(tmp_path: Path) -> None:
    cover = [["Monthly report"], ["Prepared by the station"], ["See the next sheet"]]
    path = _workbook(tmp_path / "t.xlsx", {"Cover": cover, "Data": [["t", "v"], ["2024-01-01", 1]]})
    assert _columns(_open(path)) == {"t": ["2024-01-01"], "v": ["1"]}


def test_a_sheet_of_numbers_without_a_header_is_not_taken_for_the_table(tmp_path: Path) -> None:
    chart = [[0.082, 4.7e-23, 2.5e-26], [0.099, 1.2e-21, 1.1e-24]]
    spectra = [["ASTM spectra"], ["nm", "etr", "global"], [280, 0.082, 4.7e-23]]
    path = _workbook(tmp_path / "t.xlsx", {"Chart1": chart, "Spectra": spectra})
    assert _columns(_open(path)) == {"nm": ["280"], "etr": ["0.082"], "global": ["4.7e-23"]}


def test_a_header_row_of_numbers_refuses_the_sheet_unless_a_rule_says(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "t.xlsx", {"Chart1": [[0.5, 1.5], [2.5, 3.5]]})

    with pytest.raises(UnreadableFile, match="row 1 of sheet 'Chart1' .* looks like data") as info:
        _open(path, DatasetRules(name="t", sheet="Chart1"))
    assert "header: false" in info.value.hint
    assert _columns(_open(path, DatasetRules(name="t", header=False))) == {
        "column_1": ["0.5", "2.5"],
        "column_2": ["1.5", "3.5"],
    }
