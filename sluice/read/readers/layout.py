"""Where a delimited file's rows are: the delimiter, the metadata lines above them, the header.

An Excel `sep=X` line names the delimiter; leading blank lines and `#` comments are metadata; the
header is the first line of at least two fields whose count is the most common one among the
next 50 rows, so shorter lines above it (`Exported: ...`, `Station,Alpha`) are metadata too. A
line that looks like data (numbers, dates) is never taken for a header below such lines. The
delimiter is the one whose rows agree best, then the one that skips fewer lines.

Metadata lines padded to the table's width with empty fields (NSRDB's two lines of keys and
values, SolarAnywhere's one) have the table's field count, so counts alone take them for the
header. Their *used* width (fields up to the last non-empty one) tells them apart: a line of
names below them heads rows that all look like data and fill no field past its last name, while
the lines between are wider than it (a key/value block) or the first line names fewer fields
than the rows fill. The header then moves down to that line.

Not confident: when no line of names heads a block of rows of one width but a data-like line
does, below lines taken for metadata, the layout names both as candidates and the reader refuses
the file, asking for `header_row` (or `header: false`), rather than load it under a guess.

Everything above the header is kept: the lines as text, and `key: value` pairs read from them
(`Latitude: 45.0`, `Station,Alpha`, NSRDB's line of keys above its line of values).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from itertools import islice

from sluice.read.readers.text import split_lines

DELIMITERS = ",\t;|"
_TAB_SUFFIXES = {".tsv", ".tab"}
_SAMPLE_RECORDS = 300  # rows of the head looked at for the header
_FOLLOWING = 50  # rows after a header candidate that must agree with it
_PADDED_LINES = 4  # padded metadata lines above a header, at most (NSRDB has 2)
_DATA_LIKE = re.compile(r"[\s+\-]*\d[\d\s.,:+\-/TZeE]*")  # numbers, dates, times
_SEP_HINT = re.compile(r'"?sep=(.)"?', re.IGNORECASE)
_KEY_VALUE = re.compile(r"#?\s*([^:=\t]{1,80}?)\s*(?::\s|=|\t|:$)\s*(.*)")  # `key: value`
_KEPT_LINES = 200  # metadata lines kept (each cut to _KEPT_CHARS): results stay small
_KEPT_CHARS = 500


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the rows are: the delimiter, the lines above the header, and the header's fields."""

    delimiter: str
    skip: int  # physical lines above the header (or above the first row, without a header)
    fields: tuple[str, ...]  # the header's fields, or the first row's
    preamble: tuple[str, ...] = ()  # the non-blank lines above the header, as text
    pairs: tuple[tuple[str, str], ...] = ()  # `key: value` pairs read from the preamble
    unsure: tuple[tuple[int, str, str], ...] = ()  # not confident: (line, text, why) candidates


def detect_layout(
    text: str,
    suffix: str = "",
    skip_rows: int | None = None,
    *,
    header: bool = True,
    delimiter: str | None = None,
) -> Layout:
    """The layout of the head's text; `skip_rows` and `delimiter` (the dataset's rules) fix
    the lines above the header and the delimiter."""
    lines = split_lines(text)
    sep, lead = _preamble(lines if skip_rows is None else lines[:skip_rows])
    lead = lead if skip_rows is None else skip_rows
    sep = delimiter or sep
    choices = (sep,) if sep else ("\t",) if suffix in _TAB_SUFFIXES else tuple(DELIMITERS)
    fixed = skip_rows is not None
    scored = [_candidate(lines[lead:], d, fixed=fixed, header=header) for d in choices]
    score, (chosen, start, fields, other) = max(scored, key=lambda scored: scored[0])
    skip = lead + start
    above = tuple(line.rstrip("\r\n") for line in lines[:skip] if line.strip())[:_KEPT_LINES]
    unsure = () if fixed or not header else _unsure(lines, lead, start, other, score[0], fields)
    return Layout(
        delimiter=chosen,
        skip=skip,
        fields=tuple(fields),
        preamble=tuple(line[:_KEPT_CHARS] for line in above),
        pairs=preamble_pairs(above, chosen),
        unsure=unsure,
    )


def _unsure(
    lines: list[str], lead: int, start: int, other: int | None, sure: float, fields: list[str]
) -> tuple[tuple[int, str, str], ...]:
    """The candidate headers, with why each is in doubt, when the chosen one is not certain:
    it heads no block of rows while a data-like line does, or it looks like data itself."""

    def at(index: int, why: str) -> tuple[int, str, str]:
        return lead + index + 1, lines[lead + index].rstrip("\r\n"), why

    if other is not None and sure < 1.0:
        return at(start, "heads no block of rows of its width"), at(
            other, "heads one, but looks like data"
        )
    named = [f for f in fields if f.strip()]
    if named and all(_DATA_LIKE.fullmatch(f) for f in named):
        return (at(start, "looks like data (numbers, dates), not names"),)
    return ()


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
# delimiter, header line below the lead, header fields, and when not sure the line of another
# candidate (a data-like line that starts a block)
_Choice = tuple[str, int, list[str], int | None]


def _candidate(
    lines: list[str], delimiter: str, *, fixed: bool, header: bool
) -> tuple[tuple[float, ...], _Choice]:
    """A score for reading with `delimiter` (higher is better) and the header it finds."""
    records = _records(lines, delimiter)
    at, sure = _header_at(records, fixed=fixed, header=header)
    if at is None:
        first = records[0] if records else (0, [])
        return (0.0,), (delimiter, first[0], first[1], None)
    line, fields = records[at]
    below = records[at + 1 : at + 1 + _FOLLOWING]
    padded = _pad_trailing_delimiter(fields, below)
    widths = [len(f) for _, f in below]
    agree = sum(n == len(padded) for n in widths) / len(widths) if widths else 1.0
    sure = 1.0 if padded is not fields else sure
    other = _block_start(records, at) if sure < 1.0 else None
    return (sure, agree, -line, len(padded)), (delimiter, line, padded, other)


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
        if names_like and counts[index] >= 2 and _starts_block(counts, index):
            moved = index if fixed or not header else _below_padded_metadata(records, index)
            return moved, 1.0
    return first, 0.5


def _block_start(records: list[_Record], header: int) -> int | None:
    """The line of the first record below `header` that starts a block of one width: the other
    candidate when `header` starts none (it looks like data, so it was not taken)."""
    counts = [len(fields) for _, fields in records]
    starts = (i for i in range(header + 1, len(counts)) if counts[i] >= 2)
    found = next((i for i in starts if _starts_block(counts, i)), None)
    return None if found is None else records[found][0]


def _used(fields: list[str]) -> int:
    """Fields up to the last one that is not empty (a padded metadata line uses few)."""
    return next((i + 1 for i in range(len(fields) - 1, -1, -1) if fields[i].strip()), 0)


def _below_padded_metadata(records: list[_Record], top: int) -> int:
    """`top`, or the line of names below it when `top` and the lines down to it are metadata
    padded to the table's width (see the module's docstring): the last line of names, at most
    `_PADDED_LINES` below, that heads three data-like rows or more filling no field past its
    names, below lines all wider than it."""
    width = len(records[top][1])
    end = min(len(records), top + 2 * _FOLLOWING)
    used = [_used(fields) for _, fields in records[:end]]
    data = [_data_like(fields) for _, fields in records[:end]]
    found = None
    for k in range(top + 1, min(end, top + _PADDED_LINES + 1)):
        fields = records[k][1]
        if len(fields) != width:
            break  # not a file of padded lines: the field counts said it all
        if not _names(fields[: used[k]]) or any(used[i] <= used[k] for i in range(top + 1, k)):
            continue  # data, or rows above it fit under it: a row of the table, not its header
        below = range(k + 1, min(end, k + 1 + _FOLLOWING))
        widest = max((used[i] for i in below), default=0)
        if (
            len(below) >= 3
            and widest <= used[k]
            and sum(data[i] for i in below) >= 0.9 * len(below)
        ):
            found = (k, widest)
    if found is None:
        return top
    k, widest = found
    return k if used[top] > used[k] or used[top] < widest or data[top] else top


def _names(fields: list[str]) -> bool:
    """Two names or more, none data-like, at most one left empty (a pandas index column)."""
    return len(fields) >= 2 and sum(not f.strip() for f in fields) <= 1 and not _data_like(fields)


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


def preamble_pairs(lines: tuple[str, ...], delimiter: str) -> tuple[tuple[str, str], ...]:
    """`key: value` pairs of metadata lines: a line of keys above a line of as many values
    (three fields or more: NSRDB), `key: value` / `key=value` / `key<tab>value` lines, and
    two-field lines outside runs of three or more (a run is a small table, not pairs)."""
    records = [next(csv.reader([line], delimiter=delimiter), []) for line in lines]
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(records):
        fields, width = records[index], _used(records[index])
        nxt = records[index + 1] if index + 1 < len(records) else []
        if width >= 3 and _used(nxt) <= width <= len(nxt) and not _data_like(fields[:width]):
            pairs += [
                (k.strip(), v.strip()[:_KEPT_CHARS]) for k, v in zip(fields, nxt, strict=False) if k
            ]
            index += 2
            continue
        pairs += _line_pair(lines[index], fields, _run(records, index))
        index += 1
    return tuple(pairs)


def _line_pair(line: str, fields: list[str], run: int) -> list[tuple[str, str]]:
    if _used(fields) == 2 and run < 3 and fields[0].strip():
        return [(fields[0].strip().lstrip("#").strip(), fields[1].strip()[:_KEPT_CHARS])]
    if _used(fields) <= 1 and (match := _KEY_VALUE.fullmatch(line.strip())):
        return [(match[1].strip(), match[2].strip()[:_KEPT_CHARS])]
    return []


def _run(records: list[list[str]], index: int) -> int:
    """How many consecutive records around `index` have its used width."""
    width = _used(records[index])
    lo = index
    while lo > 0 and _used(records[lo - 1]) == width:
        lo -= 1
    hi = index
    while hi + 1 < len(records) and _used(records[hi + 1]) == width:
        hi += 1
    return hi - lo + 1
