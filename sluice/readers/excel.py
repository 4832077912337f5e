"""Excel workbooks (.xlsx): one sheet as text columns, each cell written so inference reads it back.

Cells are rendered, not typed: Excel stores every number as a float and a date as a formatted
number, so a column's type is decided later over the whole file by `schema.infer`, from text
such as `42`, `2.5`, `true`, `2024-01-02` or `2024-01-02T03:04:05`. python-calamine (Rust) parses
the sheet and holds its cells in memory (about 60 MB for 100,000 rows of 8 columns); the Python
rows and Arrow batches are made `batch_rows` at a time. It reads .xls, .xlsb and .ods too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import python_calamine as calamine

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.readers import Opened, Source
from sluice.readers.columnar import local_file

_HINT = "open it in Excel and save it again as .xlsx, or export the sheet as CSV"
_EXACT_FLOAT = 2.0**53  # beyond this an integral float is not an exact integer

Row = list[str | None]


def open_excel(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """The rules' sheet (else the first). Title rows above the header are skipped: `skip_rows`
    non-empty rows, or else the rows before the first that fills at least half as many cells as
    the widest of the leading rows (a title fills one cell, a header most of them)."""
    stack = ExitStack()
    try:
        path = stack.enter_context(local_file(source))  # no suffix: calamine sniffs the bytes
        sheet = _sheet(stack.enter_context(_workbook(path)), rules.sheet)
        first, rows = _skip_titles(_rows(sheet, frozenset(rules.null_values)), rules.skip_rows)
    except BaseException:
        stack.close()
        raise
    if first is None:
        stack.close()
        return Opened(names=[], batches=iter(()))
    names = _names(first) if rules.header else _numbered(len(first))
    data = rows if rules.header else chain([first], rows)
    return Opened(names=names, batches=_owned(stack, _batches(data, names, batch_rows)))


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


def _rows(sheet: calamine.CalamineSheet, nulls: frozenset[str]) -> Iterator[Row]:
    """Rendered rows; rows with no cell filled are skipped (calamine gives "" for an empty cell)."""
    for cells in sheet.iter_rows():
        if cells.count("") < len(cells):
            yield [_text(v, nulls) if type(v) is str else _render(v) for v in cells]


HEADER_SEARCH = 20  # leading rows among which the header is looked for


def _skip_titles(rows: Iterator[Row], skip: int | None) -> tuple[Row | None, Iterator[Row]]:
    """The first row that is not a title, and the rows after it."""
    if skip is not None:
        rest = islice(rows, skip, None)
        return next(rest, None), rest
    head = list(islice(rows, HEADER_SEARCH))
    if not head:
        return None, rows
    widest = max(_filled(row) for row in head)
    at = next(i for i, row in enumerate(head) if 2 * _filled(row) >= widest)
    return head[at], chain(head[at + 1 :], rows)


def _filled(row: Row) -> int:
    return sum(cell is not None for cell in row)


def _names(header: Row) -> list[str]:
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
