"""Where a sheet's table starts: title rows above its header, and a header of merged cells.

The header is the `header_row` rule's row (the sheet's row number, as Excel shows it), else
the row after `skip_rows` non-empty rows, else the first of the leading rows that fills at
least half as many cells as the widest of them (a title fills one cell, a header most). Rows
above it are titles, kept as the file's metadata.

A header of merged cells spans rows: `Temperature` merged over two columns above `min` and
`max`, `Date` merged down over both rows. Excel keeps a merged cell's value in its first
cell only, so read row by row the header named `Temperature` and a blank, and its second row
became a row of data. The merged ranges of the header's row say how far down the header goes
(a cell merged downwards, or a row of names under cells merged across); each column's name
joins its distinct values down those rows, a merged value filled across its range:
`Temperature min`, `Temperature max`, `Date`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice

Row = list[str | None]
Indexed = tuple[int, Row]  # the sheet's 0-based row, its rendered cells
Merge = tuple[tuple[int, int], tuple[int, int]]  # (first row, first column), (last row, last)
HEADER_SEARCH = 20  # leading rows among which the header is looked for
_DATA_LIKE = re.compile(r"[\s+\-]*\d[\d\s.,:+\-/TZeE]*")


@dataclass(slots=True)
class Header:
    """The header's names, its sheet rows (0-based, first and last), the title rows above it,
    and its first row's cells as read (the first row of data, for a sheet without a header)."""

    names: list[str]
    first: int
    last: int
    titles: list[str] = field(default_factory=list)
    cells: Row = field(default_factory=list)


def find_header(
    rows: Iterator[Indexed],
    merges: list[Merge],
    *,
    header_row: int | None = None,
    skip_rows: int | None = None,
) -> tuple[Header | None, Iterator[Indexed]]:
    """The header (None for a sheet without rows) and the rows below it."""
    above, first, rest = _first_row(rows, header_row, skip_rows)
    if first is None:
        return None, rest
    index, cells = first
    down = max((m[1][0] for m in merges if m[0][0] == index), default=index)
    ahead = list(islice(rest, max(down - index, 1)))  # the rows the header may span
    last = down
    if down == index and ahead and _across(merges, index) and _names_under(merges, index, ahead[0]):
        last = index + 1
    spanned = [first, *(row for row in ahead if row[0] <= last)]
    rest = chain((row for row in ahead if row[0] > last), rest)
    names = _joined(spanned, merges) if len(spanned) > 1 or _across(merges, index) else cells
    titles = [" ".join(c for c in row if c) for _, row in above]
    return Header([n or "" for n in names], index, last, titles, cells), rest


def _first_row(
    rows: Iterator[Indexed], header_row: int | None, skip_rows: int | None
) -> tuple[list[Indexed], Indexed | None, Iterator[Indexed]]:
    """The rows above the header, the header's first row, and the rows after it."""
    if header_row is not None:
        above: list[Indexed] = []
        for row in rows:
            if row[0] >= header_row - 1:
                return above, row, rows
            above.append(row)
        return above, None, rows
    if skip_rows is not None:
        head = list(islice(rows, skip_rows))
        return head, next(rows, None), rows
    head = list(islice(rows, HEADER_SEARCH))
    if not head:
        return [], None, rows
    widest = max(_filled(row) for _, row in head)
    at = next(i for i, (_, row) in enumerate(head) if 2 * _filled(row) >= widest)
    return head[:at], head[at], chain(head[at + 1 :], rows)


def _filled(row: Row) -> int:
    return sum(cell is not None for cell in row)


def _across(merges: list[Merge], index: int) -> bool:
    return any(m[0][0] == index and m[1][1] > m[0][1] for m in merges)


def _names_under(merges: list[Merge], index: int, below: Indexed) -> bool:
    """Whether the row right below the header's holds a name (text, no number or date) under
    every cell merged across in the header's row: a second row of the header."""
    at, cells = below
    if at != index + 1:
        return False
    columns = [c for m in merges if m[0][0] == index for c in range(m[0][1], m[1][1] + 1)]
    values = [cells[c] if c < len(cells) else None for c in columns]
    return all(v is not None and not data_like(v) for v in values)


def data_like(value: str) -> bool:
    """A number, a date or a time: a value, not a name."""
    return bool(_DATA_LIKE.fullmatch(value))


def _joined(spanned: list[Indexed], merges: list[Merge]) -> list[str]:
    """Each column's distinct values down the header's rows, merged values filled across."""
    top = spanned[0][0]
    grid = {index: cells for index, cells in spanned}
    filled: dict[tuple[int, int], str] = {}
    for (r0, c0), (r1, c1) in merges:
        value = grid.get(r0, [])[c0] if r0 in grid and c0 < len(grid[r0]) else None
        if value is not None and r0 >= top:
            filled |= {(r, c): value for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
    width = max(len(cells) for _, cells in spanned)
    names = []
    for column in range(width):
        parts: list[str] = []
        for index, cells in spanned:
            value = filled.get((index, column)) or (cells[column] if column < len(cells) else None)
            if value and value not in parts:
                parts.append(value)
        names.append(" ".join(parts))
    return names
