"""Where a delimited file's rows are: the delimiter, the metadata lines above them, the header.

An Excel `sep=X` line names the delimiter; leading blank lines and `#` comments are metadata; the
header is the first line of at least two fields whose count is the most common one among the
next 50 rows, so shorter lines above it (`Exported: ...`, `Station,Alpha`) are metadata too. A
line that looks like data (numbers, dates) is never taken for a header below such lines: the
file then keeps its first line as the header and a longer row is an error, not a guess. The
delimiter is the one whose rows agree best, then the one that skips fewer lines.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from itertools import islice

from sluice.readers.text import split_lines

DELIMITERS = ",\t;|"
_TAB_SUFFIXES = {".tsv", ".tab"}
_SAMPLE_RECORDS = 300  # rows of the head looked at for the header
_FOLLOWING = 50  # rows after a header candidate that must agree with it
_DATA_LIKE = re.compile(r"[\s+\-]*\d[\d\s.,:+\-/TZeE]*")  # numbers, dates, times
_SEP_HINT = re.compile(r'"?sep=(.)"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the rows are: the delimiter, the lines above the header, and the header's fields."""

    delimiter: str
    skip: int  # physical lines above the header (or above the first row, without a header)
    fields: tuple[str, ...]  # the header's fields, or the first row's


def detect_layout(
    text: str, suffix: str = "", skip_rows: int | None = None, *, header: bool = True
) -> Layout:
    """The layout of the head's text; `skip_rows` (the dataset's rule) fixes the lines above."""
    lines = split_lines(text)
    sep, lead = _preamble(lines if skip_rows is None else lines[:skip_rows])
    lead = lead if skip_rows is None else skip_rows
    choices = (sep,) if sep else ("\t",) if suffix in _TAB_SUFFIXES else tuple(DELIMITERS)
    fixed = skip_rows is not None
    scored = [_candidate(lines[lead:], d, fixed=fixed, header=header) for d in choices]
    _, (delimiter, start, fields) = max(scored, key=lambda scored: scored[0])
    return Layout(delimiter=delimiter, skip=lead + start, fields=tuple(fields))


def _preamble(lines: list[str]) -> tuple[str | None, int]:
    """An Excel `sep=X` hint, and how many leading lines are blank, `#` comments or the hint."""
    sep = None
    for index, line in enumerate(lines):
        if hint := _SEP_HINT.fullmatch(line.rstrip("\r\n")):
            sep = hint[1]
        elif line.strip() and not line.lstrip().startswith("#"):
            return sep, index
    return sep, len(lines)


_Record = tuple[int, list[str]]  # physical line index, fields
_Choice = tuple[str, int, list[str]]  # delimiter, header line below the lead, header fields


def _candidate(
    lines: list[str], delimiter: str, *, fixed: bool, header: bool
) -> tuple[tuple[float, ...], _Choice]:
    """A score for reading with `delimiter` (higher is better) and the header it finds."""
    records = _records(lines, delimiter)
    at, sure = _header_at(records, fixed=fixed, header=header)
    if at is None:
        first = records[0] if records else (0, [])
        return (0.0,), (delimiter, first[0], first[1])
    line, fields = records[at]
    below = records[at + 1 : at + 1 + _FOLLOWING]
    padded = _pad_trailing_delimiter(fields, below)
    widths = [len(f) for _, f in below]
    agree = sum(n == len(padded) for n in widths) / len(widths) if widths else 1.0
    sure = 1.0 if padded is not fields else sure
    return (sure, agree, -line, len(padded)), (delimiter, line, padded)


def _records(lines: list[str], delimiter: str) -> list[_Record]:
    """(physical line index, fields) of each non-blank record; quoted newlines stay in a field."""
    reader = csv.reader(lines, delimiter=delimiter)
    records: list[_Record] = []
    line = 0
    try:
        for fields in islice(reader, _SAMPLE_RECORDS):
            if fields:
                records.append((line, fields))
            line = reader.line_num
    except csv.Error:
        pass  # not text this delimiter can read past here: judge on what came before
    return records


def _header_at(records: list[_Record], *, fixed: bool, header: bool) -> tuple[int | None, float]:
    """The header's record, and 1.0 when the rows below agree with it (0.5 when they do not).

    Lines above the first line of two fields or more are metadata. Lines of two fields or more
    are metadata only when a later line starts a block of rows of one width and does not look
    like data itself (a header holds names, not numbers): a header above longer rows stays.
    """
    counts = [len(fields) for _, fields in records]
    first = 0 if fixed else next((i for i, n in enumerate(counts) if n >= 2), None)
    if first is None or not counts or counts[first] < 2:
        return None, 0.0
    for index in range(first, first + 1 if fixed else len(counts)):
        names_like = index == first or not header or not _data_like(records[index][1])
        if names_like and _starts_block(counts, index):
            return index, 1.0
    return first, 0.5


def _starts_block(counts: list[int], index: int) -> bool:
    following = counts[index + 1 : index + 1 + _FOLLOWING]
    return bool(following) and counts[index] == Counter(following).most_common(1)[0][0]


def _data_like(fields: list[str]) -> bool:
    return any(_DATA_LIKE.fullmatch(f) for f in fields)


def _pad_trailing_delimiter(fields: list[str], below: list[_Record]) -> list[str]:
    """Rows that all end in a delimiter have one field more than the header: name it ''."""
    width = len(fields) + 1
    longer = [f for _, f in below if len(f) == width]
    if longer and len(longer) * 2 > len(below) and all(f[-1] == "" for f in longer):
        return [*fields, ""]
    return fields
