"""Delimited text (CSV, TSV, semicolon, pipe): sniffed delimiter, quoted newlines, text columns."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.readers import Opened, Source

DELIMITERS = ",\t;|"


def open_delimited(source: Source, rules: DatasetRules, batch_rows: int) -> Opened:
    """Every column as text; the rules' missing-value markers become nulls."""
    delimiter = sniff_delimiter(_head_text(source), source.suffix)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    read = pacsv.ReadOptions(block_size=max(1 << 20, batch_rows * 128))
    names = _header(source, parse)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=list(rules.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    stream = source.open()
    try:
        reader = pacsv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        stream.close()
        raise _unreadable(exc) from exc
    return Opened(names=names, batches=_guarded(reader, stream))


def _head_text(source: Source) -> str:
    head = source.head(65536)
    text = head.decode("utf-8-sig", errors="replace")
    return text if len(head) < 65536 else text.rsplit("\n", 1)[0]


def sniff_delimiter(text: str, suffix: str = "") -> str:
    if suffix in {".tsv", ".tab"}:
        return "\t"
    try:
        return csv.Sniffer().sniff(text[:16384], delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = text.splitlines()[0] if text else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        return max(counts, key=counts.__getitem__) if any(counts.values()) else ","


def _header(source: Source, parse: pacsv.ParseOptions) -> list[str]:
    with source.open() as stream:
        try:
            reader = pacsv.open_csv(stream, parse_options=parse)
        except pa.ArrowInvalid as exc:
            raise _unreadable(exc) from exc
        return list(reader.schema.names)


def _guarded(reader: pacsv.CSVStreamingReader, stream: IO[bytes]) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise _unreadable(exc) from exc
            yield batch
    finally:
        stream.close()


def _unreadable(exc: pa.ArrowInvalid) -> UnreadableFile:
    text = str(exc).strip().splitlines()[0]
    if "UTF8" in text or "utf8" in text.lower():
        hint = "the file is not UTF-8: re-encode it as UTF-8"
    elif "columns" in text:
        hint = "a row has a different number of fields than the header: fix or remove it"
    else:
        hint = "the file is not well-formed delimited text: fix it and replay"
    return UnreadableFile(f"malformed CSV ({text})", hint=hint)
