"""Excel workbooks (.xlsx): one sheet as text columns, each cell written so inference reads it back.

Cells are rendered, not typed: Excel stores every number as a float and a date as a formatted
number, so a column's type is decided later over the whole file by `schema.infer`, from text
such as `42`, `2.5`, `true`, `2024-01-02` or `2024-01-02T03:04:05`. python-calamine (Rust) parses
the sheet and holds its cells in memory (about 60 MB for 100,000 rows of 8 columns); the Python
rows and Arrow batches are made `batch_rows` at a time. It reads .xls, .xlsb and .ods too.

The sheet is the `sheet` rule's (a name or a 0-based index), else the first sheet that holds
a table, a header of two names or more (not numbers) above a row: a workbook whose first sheet
is a cover, a chart's numbers or empty has its data further on (the guess is reported).
`sheet: "*"` reads every sheet with a header as one table: the union of their columns by name,
and a `sheet` column naming each row's sheet; each sheet is loaded twice (its header, then its
rows), so memory holds one sheet at a time. Where the table starts in a sheet, and headers of
merged cells, are `sluice.read.readers.sheet_header`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import pyarrow as pa
import python_calamine as calamine

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Notes, Opened, Source
from sluice.read.readers.columnar import local_file
from sluice.read.readers.sheet_header import Header, Indexed, Row, data_like, find_header

_HINT = "open it in Excel and save it again as .xlsx, or export the sheet as CSV"
_EXACT_FLOAT = 2.0**53  # beyond this an integral float is not an exact integer
ALL = "*"  # the `sheet` rule that reads every sheet


def open_excel(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """The rules' sheet (else the first with rows), or every sheet with `sheet: "*"`."""
    stack = ExitStack()
    notes = Notes()
    try:
        path = stack.enter_context(local_file(source))  # no suffix: calamine sniffs the bytes
        book = stack.enter_context(_workbook(path))
        if rules.sheet == ALL:
            names, rows = _every_sheet(book, rules, notes)
        else:
            names, rows = _one_sheet(book, rules, notes)
    except BaseException:
        stack.close()
        raise
    batches = _owned(stack, _batches(rows, names, batch_rows))
    return Opened(names=names, batches=batches, notes=notes)


def _one_sheet(
    book: calamine.CalamineWorkbook, rules: DatasetRules, notes: Notes
) -> tuple[list[str], Iterator[Row]]:
    sheet = _sheet(book, rules.sheet) if rules.sheet is not None else _with_rows(book, notes)
    header, rows = _table(sheet, rules)
    if header is None:
        return [], iter(())
    named = [n for n in header.names if n]
    if rules.header and rules.lines_above is None and all(map(data_like, named)):
        raise UnreadableFile(
            f"the header is not certain: row {header.first + 1} of sheet {sheet.name!r} "
            f"({', '.join(named[:4])}...) looks like data (numbers, dates), not names",
            hint=f"set `header_row: <row>` for dataset {rules.name!r} in datasets.yaml (or "
            "`header: false` for a sheet without a header), then replay",
        )
    _noted(notes, header, rules, sheet.name)
    names = _names(header.names) if rules.header else _numbered(len(header.names))
    data = (cells for _, cells in rows)
    return names, data if rules.header else chain([header.cells], data)


def _table(
    sheet: calamine.CalamineSheet, rules: DatasetRules
) -> tuple[Header | None, Iterator[Indexed]]:
    rows = _rows(sheet, frozenset(rules.null_values))
    merges = list(sheet.merged_cell_ranges or []) if rules.header else []
    return find_header(rows, merges, header_row=rules.header_row, skip_rows=rules.skip_rows)


def _noted(notes: Notes, header: Header, rules: DatasetRules, sheet: str) -> None:
    notes.preamble += tuple(t for t in header.titles if t)
    if rules.lines_above is None and rules.header:
        titles = len(header.titles)
        detail = f"header on row {header.first + 1} of sheet {sheet!r}"
        detail += f", {titles} title row{'s' * (titles > 1)} kept" if titles else ""
        notes.guess("header", detail, f"header_row: {header.first + 1}", notable=bool(titles))
    if header.last > header.first:
        rows = f"rows {header.first + 1}-{header.last + 1}"
        notes.guess("header", f"merged header cells over {rows}: names joined", "header_row")


def _with_rows(book: calamine.CalamineWorkbook, notes: Notes) -> calamine.CalamineSheet:
    """The first sheet that holds a table (else the first sheet)."""
    names = book.sheet_names
    if not names:
        raise UnreadableFile("the workbook has no sheets", hint=_HINT)
    for name in names:
        sheet = _sheet(book, name)
        if _holds_table(sheet):
            break
    else:
        return _sheet(book, None)
    if name != names[0]:
        before = ", ".join(repr(n) for n in names[: names.index(name)])
        detail = f"sheet {name!r}, the first with a table (not {before})"
        notes.guess("sheet", detail, f"sheet: {name}")
    else:
        notes.guess("sheet", f"sheet {name!r}, the first", f"sheet: {name}", notable=False)
    return sheet


def _holds_table(sheet: calamine.CalamineSheet) -> bool:
    """A header of two names or more (not numbers or dates) with a row below it: a cover
    sheet's lines are not, nor a sheet of numbers without a header (a chart's data)."""
    merges = list(sheet.merged_cell_ranges or [])
    header, rest = find_header(_rows(sheet, frozenset()), merges)
    names = [] if header is None else [n for n in header.names if n and not data_like(n)]
    return len(names) >= 2 and next(rest, None) is not None


def _every_sheet(
    book: calamine.CalamineWorkbook, rules: DatasetRules, notes: Notes
) -> tuple[list[str], Iterator[Row]]:
    """Every sheet with a header as one table: the union of their columns, and `sheet`."""
    headers: dict[str, list[tuple[str, int]]] = {}
    for name in book.sheet_names:
        header, _ = _table(_sheet(book, name), rules)
        if header is not None:
            headers[name] = _keys(_names(header.names))
    union = list(dict.fromkeys(key for keys in headers.values() for key in keys))
    notes.guess("sheet", f"every sheet with rows: {', '.join(map(repr, headers))}", 'sheet: "*"')
    names = ["sheet", *(name for name, _ in union)]
    return names, _sheets_rows(book, rules, headers, union)


def _keys(names: list[str]) -> list[tuple[str, int]]:
    """Names with their occurrence (a sheet may name two columns alike)."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        keys.append((name, seen[name]))
    return keys


def _sheets_rows(
    book: calamine.CalamineWorkbook,
    rules: DatasetRules,
    headers: dict[str, list[tuple[str, int]]],
    union: list[tuple[str, int]],
) -> Iterator[Row]:
    for name, keys in headers.items():
        places = [union.index(key) + 1 for key in keys]
        _, rows = _table(_sheet(book, name), rules)
        for _, cells in rows:
            row: Row = [name] + [None] * len(union)
            for place, value in zip(places, cells, strict=False):
                row[place] = value
            yield row


@contextmanager
def _workbook(path: Path) -> Iterator[calamine.CalamineWorkbook]:
    with _unreadable():
        workbook = calamine.CalamineWorkbook.from_path(str(path))
    with workbook:
        yield workbook


def _sheet(workbook: calamine.CalamineWorkbook, name: str | int | None) -> calamine.CalamineSheet:
    """The sheet the rules name, by name or 0-based index (else the first)."""
    names = workbook.sheet_names
    if not names:
        raise UnreadableFile("the workbook has no sheets", hint=_HINT)
    if isinstance(name, int) and name >= len(names):
        raise UnreadableFile(
            f"no sheet {name} (0-based); the workbook has {len(names)}: "
            f"{', '.join(map(repr, names))}",
            hint="set `sheet` in datasets.yaml to one of these names or indexes",
        )
    if isinstance(name, str) and name not in names:
        raise UnreadableFile(
            f"no sheet named {name!r}; the workbook has {', '.join(map(repr, names))}",
            hint="set `sheet` in datasets.yaml to one of these names",
        )
    with _unreadable():
        chosen = names[name] if isinstance(name, int) else name if name is not None else names[0]
        return workbook.get_sheet_by_name(chosen)


@contextmanager
def _unreadable() -> Iterator[None]:
    try:
        yield
    except calamine.PasswordError as exc:
        raise UnreadableFile(
            "the workbook is password-protected",
            hint="remove the password (File > Info > Protect Workbook) and save it again",
        ) from exc
    except (calamine.CalamineError, OSError, ValueError) as exc:
        text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise UnreadableFile(f"malformed Excel workbook ({text})", hint=_HINT) from exc


def _rows(sheet: calamine.CalamineSheet, nulls: frozenset[str]) -> Iterator[Indexed]:
    """Rendered rows with their 0-based row in the sheet; rows with no cell filled are skipped
    (calamine gives "" for an empty cell)."""
    for index, cells in enumerate(sheet.iter_rows()):
        if cells.count("") < len(cells):
            yield index, [_text(v, nulls) if type(v) is str else _render(v) for v in cells]


def _names(header: list[str]) -> list[str]:
    """Header cells; a blank one (or a column beyond the header) is `column_<n>`, 1-based."""
    return [name if name else f"column_{i}" for i, name in enumerate(header, start=1)]


def _numbered(width: int) -> list[str]:
    return [f"column_{i}" for i in range(1, width + 1)]


def _batches(rows: Iterator[Row], names: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    schema = pa.schema([pa.field(name, pa.string()) for name in names])
    width = len(names)
    pending: list[Row] = []
    for row in rows:
        pending.append(row + [None] * (width - len(row)))  # calamine's rows share one width
        if len(pending) == batch_rows:
            yield _batch(pending, schema)
            pending = []
    if pending:
        yield _batch(pending, schema)


def _batch(rows: list[Row], schema: pa.Schema) -> pa.RecordBatch:
    columns = [pa.array(column, pa.string()) for column in zip(*rows, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _owned(stack: ExitStack, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    with stack:
        yield from batches


def _text(value: str, nulls: frozenset[str]) -> str | None:
    """Empty and error cells (both "" from calamine) and missing-value markers are null."""
    return None if value == "" or value in nulls else value


def _render(value: Any) -> str:
    """A typed cell as text that inference reads back."""
    render = _RENDERERS.get(type(value))
    return render(value) if render is not None else str(value)


def _number(value: float) -> str:
    """Integral floats as integers (Excel stores 42 as 42.0); others as Python's shortest repr."""
    if value.is_integer() and abs(value) < _EXACT_FLOAT:
        return str(int(value))
    return repr(value)


def _duration(value: dt.timedelta) -> str:
    """`[-]H:MM:SS[.ffffff]` in total hours, as Excel's `[h]:mm:ss` shows a duration."""
    micros = value // dt.timedelta(microseconds=1)
    seconds, fraction = divmod(abs(micros), 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{'-' if micros < 0 else ''}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{fraction:06d}" if fraction else text


_RENDERERS: dict[type, Callable[[Any], str]] = {
    float: _number,
    int: str,
    bool: lambda value: "true" if value else "false",
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: _duration,
}
