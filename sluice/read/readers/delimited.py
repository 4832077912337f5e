"""Delimited text (CSV, TSV, semicolon, pipe) as text columns, in any encoding, below metadata.

Detection (encoding, delimiter, metadata lines above the header, the header) reads the first
64 KB; `readers.text` and `readers.layout` hold it. Reading is pyarrow's streaming
CSV reader on UTF-8 bytes: the file's own stream when it is UTF-8, else a recoding stream, with
a footer below the rows cut off as it passes (`readers.footer`). Columns are read under
positional names (`c0`, `c1`, ...) so a header with duplicate or empty names reads too; the
header's own names go to `Opened.names`, where `read` makes them safe and unique. Short rows
refuse the file unless the dataset says `ragged: pad` (`sluice.read.readers.ragged`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.read.readers import Notes, Opened, Source
from sluice.read.readers.footer import FooterCut, may_end_in_footer
from sluice.read.readers.layout import Layout, detect_layout
from sluice.read.readers.ragged import BadRows
from sluice.read.readers.text import (
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
from sluice.read.readers.throttle import Throttled

log = logging.getLogger(__name__)

_LONG_HINT = "a row has a different number of fields than the header (more): fix or remove it"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What detection decided; error messages re-read the file with it."""

    source: Source
    rules: DatasetRules
    encoding: Encoding
    layout: Layout


def open_delimited(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """Every column as text; the rules' missing-value markers become nulls."""
    plan = _detect(source, rules)
    width = len(plan.layout.fields)
    names = list(plan.layout.fields) if rules.header else [f"column_{i + 1}" for i in range(width)]
    bad = BadRows(
        rules.ragged,
        delimiter=plan.layout.delimiter,
        above=plan.layout.skip + rules.header,
        nulls=rules.null_values,
        schema=pa.schema([(f"c{i}", pa.string()) for i in range(width)]),
    )
    raw: IO[bytes] = open_utf8(source, plan.encoding)
    footer = None
    if rules.skip_footer != 0 and (rules.skip_footer is not None or _may_end_in_footer(plan)):
        footer = FooterCut(raw, plan.layout.delimiter, width, rules.skip_footer)
        raw = footer  # type: ignore[assignment]  # a binary file object, as pyarrow wants
    stream = Throttled(raw, block_size(batch_rows))
    try:
        reader = pacsv.open_csv(stream, **_options(plan, bad, batch_rows))
    except (pa.ArrowInvalid, Undecodable) as exc:
        stream.close()
        raise _unreadable(exc, plan, bad) from exc
    notes = _notes(plan)
    batches = _guarded(reader, stream, plan, bad, _Ending(footer, bad, notes))
    return Opened(names=names, batches=batches, notes=notes)


def _may_end_in_footer(plan: _Plan) -> bool:
    """Footer detection is needed unless the file is plain UTF-8 (or ASCII so far) whose tail
    holds no blank line; a compressed file is read to its end to know."""
    if plan.source.compression is not None or plan.encoding.codec != "utf-8":
        return True
    return may_end_in_footer(plan.source.path)


def _detect(source: Source, rules: DatasetRules) -> _Plan:
    head, whole = read_head(source)
    try:
        encoding = detect_encoding(head, rules.encoding, whole=whole)
        text = head_text(head, encoding, whole=whole)
        layout = detect_layout(
            text,
            source.suffix,
            rules.lines_above,
            header=rules.header,
            delimiter=rules.delimiter,
        )
    except LookupError as exc:
        raise _unknown_encoding(rules) from exc
    except Undecodable as exc:
        raise _undecodable(exc, rules) from exc
    if not layout.fields:
        raise UnreadableFile(
            "no header and no rows below the metadata lines", hint="nothing to load"
        )
    if layout.unsure:
        raise _unsure(layout, rules)
    log.info(
        "%s: %s, delimiter %r, %d line(s) above the %s",
        source.name,
        encoding.codec,
        layout.delimiter,
        layout.skip,
        "header" if rules.header else "first row",
    )
    return _Plan(source, rules, encoding, layout)


def _unsure(layout: Layout, rules: DatasetRules) -> UnreadableFile:
    """No line is certainly the header: name the candidates rather than load under a guess."""
    doubts = "; ".join(f"line {n} ({text[:60]!r}) {why}" for n, text, why in layout.unsure)
    return UnreadableFile(
        f"the header is not certain: {doubts}",
        hint=f"set `header_row: <line>` for dataset {rules.name!r} in datasets.yaml (or "
        "`header: false`, with `skip_rows: <lines above the rows>` if any, for a file "
        "without a header), then replay",
    )


def _options(plan: _Plan, bad: BadRows, batch_rows: int) -> dict[str, object]:
    columns = [f"c{i}" for i in range(len(plan.layout.fields))]
    read = pacsv.ReadOptions(
        block_size=block_size(batch_rows),
        skip_rows=plan.layout.skip,
        column_names=columns,
        skip_rows_after_names=1 if plan.rules.header else 0,  # parsed: quoted newlines count
        use_threads=plan.rules.ragged != "pad",  # one thread numbers the rows pad puts back
    )
    parse = pacsv.ParseOptions(
        delimiter=plan.layout.delimiter, newlines_in_values=True, invalid_row_handler=bad
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


@dataclass(slots=True)
class _Ending:
    """What the reader learns at the end of the rows: the footer cut off, the rows padded."""

    footer: FooterCut | None
    bad: BadRows
    notes: Notes

    def __call__(self, rules: DatasetRules) -> None:
        if self.footer is not None and self.footer.cut_lines:
            lines = self.footer.cut_lines
            self.notes.footer = tuple(self.footer.footer)
            detail = f"{lines} line{'s' * (lines > 1)} after the rows left out, kept as metadata"
            self.notes.guess("footer", detail, f"skip_footer: {lines} (0: read them as rows)")
        if self.bad.padded:
            self.notes.guess(
                "ragged rows",
                f"{self.bad.padded} short rows read with nulls for their missing trailing "
                f"fields (the first is data row {self.bad.first_padded})",
                "ragged: pad",
            )


def _guarded(
    reader: pacsv.CSVStreamingReader, stream: Throttled, plan: _Plan, bad: BadRows, end: _Ending
) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, Undecodable) as exc:
                raise _unreadable(exc, plan, bad) from exc
            stream.took_batch()
            yield bad.merge(batch)
        if (rest := bad.rest()) is not None:
            yield rest
        end(plan.rules)
    finally:
        stream.close()


def _unreadable(exc: Exception, plan: _Plan, bad: BadRows) -> UnreadableFile:
    """pyarrow's or the recoder's error, said with the line, offset or rule a person can act on."""
    if isinstance(exc, Undecodable):
        return _undecodable(_with_line(exc, plan), plan.rules)
    text = str(exc).strip().splitlines()[0]
    if bad.text:
        return _ragged(plan, bad)
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


def _ragged(plan: _Plan, bad: BadRows) -> UnreadableFile:
    line = _ragged_line(plan, bad.expected)
    where = f"line {line}" if line else f"the row {bad.text[:80]!r}"
    fields = "field" if bad.found == 1 else "fields"
    what = "the header" if plan.rules.header else "the first row"
    hint = _LONG_HINT
    if bad.found < bad.expected:
        hint = (
            f"a row has a different number of fields than {what} (fewer): if it leaves out "
            "trailing empty fields, set "
            f"`ragged: pad` for dataset {plan.rules.name!r} in datasets.yaml to read them as "
            "null; if it is cut short, fix the file; then replay"
        )
    return UnreadableFile(
        f"{where} has {bad.found} {fields} where {what} has {bad.expected}", hint=hint
    )


def _notes(plan: _Plan) -> Notes:
    """The guesses detection made (each with the rule that makes it instead) and the preamble."""
    rules, layout = plan.rules, plan.layout
    notes = Notes(preamble=layout.preamble, fields=layout.pairs)
    if not plan.encoding.declared:
        codec = plan.encoding.codec
        detail = codec + (
            " (ASCII so far: the first other byte decides)" * plan.encoding.ascii_so_far
        )
        notes.guess("encoding", detail, f"encoding: {codec}", notable=False)
    if rules.delimiter is None:
        notes.guess(
            "delimiter", repr(layout.delimiter), f"delimiter: {layout.delimiter!r}", notable=False
        )
    if rules.lines_above is None:
        line = f"line {layout.skip + 1}"
        kept = len(layout.preamble)
        if kept:
            line += f", {kept} metadata line{'s' * (kept > 1)} kept"
        what, rule = ("header", "header_row") if rules.header else ("first row", "skip_rows")
        value = layout.skip + 1 if rules.header else layout.skip
        notes.guess(what, f"{what} on {line}", f"{rule}: {value}", notable=bool(kept))
    return notes


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
