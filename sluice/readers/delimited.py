"""Delimited text (CSV, TSV, semicolon, pipe) as text columns, in any encoding, below metadata.

Detection (encoding, delimiter, metadata lines above the header, the header) reads the first
64 KB; `sluice.readers.text` holds it. Reading is pyarrow's streaming CSV reader on UTF-8 bytes:
the file's own stream when it is UTF-8, else a recoding stream. Columns are read under
positional names (`c0`, `c1`, ...) so a header with duplicate or empty names reads too; the
header's own names go to `Opened.names`, where `read` makes them safe and unique.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.readers import Opened, Source
from sluice.readers.layout import Layout, detect_layout
from sluice.readers.text import (
    Encoding,
    Undecodable,
    detect_encoding,
    first_invalid_utf8,
    head_text,
    line_at,
    open_utf8,
    read_head,
    text_lines,
)
from sluice.readers.throttle import Throttled

log = logging.getLogger(__name__)

_RAGGED_HINT = "a row has a different number of fields than the header: fix or remove it"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What detection decided; error messages re-read the file with it."""

    source: Source
    rules: DatasetRules
    encoding: Encoding
    layout: Layout


@dataclass(slots=True)
class _BadRow:
    """The first row pyarrow found with the wrong number of fields."""

    expected: int = 0
    found: int = 0
    text: str = ""

    def __call__(self, row: pacsv.InvalidRow) -> str:
        if not self.text:
            self.expected, self.found, self.text = (
                row.expected_columns,
                row.actual_columns,
                row.text,
            )
        return "error"


def open_delimited(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """Every column as text; the rules' missing-value markers become nulls."""
    plan = _detect(source, rules)
    width = len(plan.layout.fields)
    names = list(plan.layout.fields) if rules.header else [f"column_{i + 1}" for i in range(width)]
    bad_row = _BadRow()
    stream = Throttled(open_utf8(source, plan.encoding), block_size(batch_rows))
    try:
        reader = pacsv.open_csv(stream, **_options(plan, bad_row, batch_rows))
    except (pa.ArrowInvalid, Undecodable) as exc:
        stream.close()
        raise _unreadable(exc, plan, bad_row) from exc
    return Opened(names=names, batches=_guarded(reader, stream, plan, bad_row))


def _detect(source: Source, rules: DatasetRules) -> _Plan:
    head, whole = read_head(source)
    try:
        encoding = detect_encoding(head, rules.encoding, whole=whole)
        text = head_text(head, encoding, whole=whole)
        layout = detect_layout(text, source.suffix, rules.skip_rows, header=rules.header)
    except LookupError as exc:
        raise _unknown_encoding(rules) from exc
    except Undecodable as exc:
        raise _undecodable(exc, rules) from exc
    if not layout.fields:
        raise UnreadableFile(
            "no header and no rows below the metadata lines", hint="nothing to load"
        )
    log.info(
        "%s: %s, delimiter %r, %d line(s) above the %s",
        source.name,
        encoding.codec,
        layout.delimiter,
        layout.skip,
        "header" if rules.header else "first row",
    )
    return _Plan(source, rules, encoding, layout)


def _options(plan: _Plan, bad_row: _BadRow, batch_rows: int) -> dict[str, object]:
    columns = [f"c{i}" for i in range(len(plan.layout.fields))]
    read = pacsv.ReadOptions(
        block_size=block_size(batch_rows),
        skip_rows=plan.layout.skip,
        column_names=columns,
        skip_rows_after_names=1 if plan.rules.header else 0,  # parsed: quoted newlines count
    )
    parse = pacsv.ParseOptions(
        delimiter=plan.layout.delimiter, newlines_in_values=True, invalid_row_handler=bad_row
    )
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        null_values=list(plan.rules.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return {"read_options": read, "parse_options": parse, "convert_options": convert}


def block_size(batch_rows: int) -> int:
    """Bytes of input per batch: about `batch_rows` rows of ~128 bytes, at least 1 MiB."""
    return max(1 << 20, batch_rows * 128)


def _guarded(
    reader: pacsv.CSVStreamingReader, stream: Throttled, plan: _Plan, bad_row: _BadRow
) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, Undecodable) as exc:
                raise _unreadable(exc, plan, bad_row) from exc
            stream.took_batch()
            yield batch
    finally:
        stream.close()


def _unreadable(exc: Exception, plan: _Plan, bad_row: _BadRow) -> UnreadableFile:
    """pyarrow's or the recoder's error, said with the line, offset or rule a person can act on."""
    if isinstance(exc, Undecodable):
        return _undecodable(_with_line(exc, plan), plan.rules)
    text = str(exc).strip().splitlines()[0]
    if bad_row.text:
        return _ragged(plan, bad_row)
    if "UTF8" in text or "utf8" in text.lower():
        return _not_utf8(plan, text)
    return UnreadableFile(
        f"malformed CSV ({text})",
        hint="the file is not well-formed delimited text: fix it and replay",
    )


def _with_line(exc: Undecodable, plan: _Plan) -> Undecodable:
    if exc.line is None and not exc.codec.startswith(("utf-16", "utf-32")):  # not byte lines
        with plan.source.open() as stream:
            exc.line = line_at(stream, exc.offset)
    return exc


def _not_utf8(plan: _Plan, text: str) -> UnreadableFile:
    """pyarrow found bytes that are not UTF-8 somewhere: find where, reading the file once."""
    with plan.source.open() as stream:
        found = first_invalid_utf8(stream)
    if found is None:
        return UnreadableFile(f"not UTF-8 text ({text})", hint=_encoding_hint(plan.rules))
    return _undecodable(found, plan.rules)


def _undecodable(exc: Undecodable, rules: DatasetRules) -> UnreadableFile:
    where = f"offset {exc.offset}" + (f", line {exc.line}" if exc.line else "")
    what = f"byte 0x{exc.byte:02X} at {where} is not {exc.codec}"
    if exc.why:
        what = f"{exc.why} at {where} of a file that is not UTF-8 (files joined?)"
    return UnreadableFile(what, hint=_encoding_hint(rules))


def _encoding_hint(rules: DatasetRules) -> str:
    if rules.encoding is not None:
        return (
            f"dataset {rules.name!r} declares `encoding: {rules.encoding}` in datasets.yaml, "
            "which does not read this file: correct the rule or re-encode the file, then replay"
        )
    return (
        f"the encoding was detected from the file's start; set `encoding` for dataset "
        f"{rules.name!r} in datasets.yaml (for example `encoding: cp1252` or `latin-1`), "
        "or re-encode the file as UTF-8, then replay"
    )


def _unknown_encoding(rules: DatasetRules) -> UnreadableFile:
    return UnreadableFile(
        f"unknown encoding {rules.encoding!r} (the `encoding` rule of dataset {rules.name!r})",
        hint="name a Python codec in datasets.yaml, such as utf-8, cp1252, latin-1 or utf-16",
    )


def _ragged(plan: _Plan, bad: _BadRow) -> UnreadableFile:
    line = _ragged_line(plan, bad.expected)
    where = f"line {line}" if line else f"the row {bad.text[:80]!r}"
    fields = "field" if bad.found == 1 else "fields"
    what = "the header" if plan.rules.header else "the first row"
    return UnreadableFile(
        f"{where} has {bad.found} {fields} where {what} has {bad.expected}", hint=_RAGGED_HINT
    )


def _ragged_line(plan: _Plan, expected: int) -> int | None:
    """The 1-based line where the first row of another width starts, re-reading the file."""
    with open_utf8(plan.source, plan.encoding) as stream:
        lines = text_lines(stream)
        for _ in range(plan.layout.skip):
            next(lines, None)
        try:
            found = _first_of_width(lines, plan.layout.delimiter, expected, plan.rules.header)
        except (csv.Error, Undecodable):
            return None
    return None if found is None else plan.layout.skip + found


def _first_of_width(
    lines: Iterator[str], delimiter: str, expected: int, header: bool
) -> int | None:
    """The line (1-based, from `lines`' start) of the first row that is not `expected` wide."""
    reader = csv.reader(lines, delimiter=delimiter)
    if header:
        next(reader, None)
    start = reader.line_num
    for fields in reader:
        if fields and len(fields) != expected:
            return start + 1
        start = reader.line_num
    return None
