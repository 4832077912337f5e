"""Fingerprint and read: detect the format, stream the file as Arrow batches into staged Parquet.

The raw stage keeps every value as text (missing-value markers as nulls) under safe column
names; types are decided by `schema.infer` over the whole file, never by the first block.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from sluice.contracts import FileRef, Staged
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.names import unique_identifiers
from sluice.staging import stage_path, write_batches

STAGE = "read"
SOURCE_NAMES = b"sluice.source_names"
_CHUNK = 1 << 20
_COMPRESSION = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd"}
_UNSUPPORTED = {
    b"PAR1": "Parquet",
    b"PK\x03\x04": "a ZIP archive (or Excel .xlsx)",
    b"\xd0\xcf\x11\xe0": "an OLE2 document (Excel .xls)",
    b"\xfd7zXZ": "xz-compressed data",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"ARROW1": "Arrow IPC",
}


def fingerprint(path: Path) -> tuple[str, int]:
    """sha256 hex digest of the content, streamed, and the size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def run(ref: FileRef, rules: DatasetRules, staging: Path, batch_rows: int) -> Staged:
    """Stage the file's rows as text columns in `staging/<file_id>/raw.parquet`."""
    path = Path(ref.path)
    compression = _detect(path)
    delimiter = _sniff_delimiter(_head_text(path, compression), path)
    names, batches = _open_csv(path, compression, delimiter, rules, batch_rows)
    schema = pa.schema(
        [pa.field(n, pa.string()) for n in unique_identifiers(names)],
        metadata={SOURCE_NAMES: json.dumps(names).encode()},
    )
    renamed = (pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in batches)
    staged = write_batches(stage_path(staging, ref.file_id, "raw"), schema, renamed)
    if staged.rows == 0:
        Path(staged.uri).unlink()
        raise UnreadableFile("the file has a header but no rows", hint="nothing to load")
    return staged


def source_names(schema: pa.Schema) -> list[str]:
    raw = (schema.metadata or {}).get(SOURCE_NAMES)
    return list(json.loads(raw)) if raw else list(schema.names)


def _detect(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(8192)
    if not head:
        raise UnreadableFile("the file is empty", hint="check the producer; nothing to load")
    for magic, compression in _COMPRESSION.items():
        if head.startswith(magic):
            return compression
    for magic, kind in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise UnreadableFile(
                f"detected {kind}, which this version does not read",
                hint="supply CSV or TSV (optionally gzip, bz2 or zstd compressed)",
            )
    if b"\x00" in head:
        raise UnreadableFile(
            "binary content (NUL bytes), not delimited text",
            hint="supply CSV or TSV in UTF-8",
        )
    return None


def _head_text(path: Path, compression: str | None) -> str:
    with pa.input_stream(str(path), compression=compression) as stream:
        head: bytes = stream.read(65536)
    text: str = head.decode("utf-8-sig", errors="replace")
    return text if len(head) < 65536 else text.rsplit("\n", 1)[0]


def _sniff_delimiter(text: str, path: Path) -> str:
    if path.suffix.lower() in {".tsv", ".tab"}:
        return "\t"
    try:
        return csv.Sniffer().sniff(text[:16384], delimiters=",\t;|").delimiter
    except csv.Error:
        header = text.splitlines()[0] if text else ""
        counts = {d: header.count(d) for d in ",\t;|"}
        return max(counts, key=counts.__getitem__) if any(counts.values()) else ","


def _open_csv(
    path: Path, compression: str | None, delimiter: str, rules: DatasetRules, batch_rows: int
) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    """Header names and a batch iterator with every column read as text."""
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    read = pacsv.ReadOptions(block_size=max(1 << 20, batch_rows * 128))
    names = _header(path, compression, parse)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=list(rules.null_values),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    stream = pa.input_stream(str(path), compression=compression)
    try:
        reader = pacsv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid as exc:
        stream.close()
        raise _unreadable(exc) from exc
    return names, _guarded(reader, stream)


def _header(path: Path, compression: str | None, parse: pacsv.ParseOptions) -> list[str]:
    with pa.input_stream(str(path), compression=compression) as stream:
        try:
            reader = pacsv.open_csv(stream, parse_options=parse)
        except pa.ArrowInvalid as exc:
            raise _unreadable(exc) from exc
        return list(reader.schema.names)


def _guarded(
    reader: pacsv.CSVStreamingReader, stream: io.IOBase | pa.NativeFile
) -> Iterator[pa.RecordBatch]:
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
