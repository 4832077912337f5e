"""Fingerprint and read: detect the format by content (then name), stream the file as Arrow
batches into staged Parquet.

Compression wrappers (gzip, bz2, zstd, xz, a zip holding one data file) are found by their magic
bytes; the data inside by its own magic bytes or shape, the file name breaking ties. The staged
columns get safe names; the original names and which columns hold JSON travel in the Parquet
schema's metadata, and what the reader guessed and found besides the rows (the preamble, a
footer) in the file's metadata, written at its end (`read_notes`). Text formats stage text,
and `schema.infer` decides types over the whole file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from sluice import faults
from sluice.contracts import FileMeta, FileRef, Guess, Staged
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.names import unique_identifiers
from sluice.read.readers import Notes, Opened, Reader, Source
from sluice.read.readers.text import wide_encoding
from sluice.staging import Location, read_key_values, stage_path, write_batches

STAGE = "read"
SOURCE_NAMES = b"sluice.source_names"
JSON_COLUMNS = b"sluice.json_columns"
READ_NOTES = b"sluice.read_notes"
_CHUNK = 1 << 20
_COMPRESSION = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
}
_UNSUPPORTED = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
}
_HINT = (
    "supply CSV/TSV, JSON/NDJSON, Parquet, Arrow/Feather, ORC or Excel .xlsx "
    "(optionally gzip, bz2, zstd, xz or zip compressed)"
)


def fingerprint(path: Path) -> tuple[str, int]:
    """sha256 hex digest of the content, streamed, and the size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def run(ref: FileRef, rules: DatasetRules, staging: Location, batch_rows: int) -> Staged:
    """Stage the file's rows in `staging/<file_id>/raw.parquet` under safe column names."""
    source = detect_source(Path(ref.path))
    opened = reader_for(source)(source, rules, batch_rows)
    return _stage(opened, stage_path(staging, ref.file_id, "raw"))


def _stage(opened: Opened, path: Location) -> Staged:
    batches = _nonempty(opened.batches)
    first = next(batches, None)
    if first is None:
        raise UnreadableFile("the file has a header but no rows", hint="nothing to load")
    schema = staged_schema(opened, first.schema, unique_identifiers(opened.names))
    renamed = (pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in _chain(first, batches))
    return write_batches(path, schema, renamed, late=lambda: {READ_NOTES: dumps(opened.notes)})


def staged_schema(opened: Opened, first: pa.Schema, names: list[str]) -> pa.Schema:
    """The staged columns: safe `names`, the reader's types (of its `first` batch), and the
    source names and JSON columns in the schema's metadata."""
    metadata = {
        SOURCE_NAMES: json.dumps(opened.names).encode(),
        JSON_COLUMNS: json.dumps(sorted(opened.json_columns)).encode(),
    }
    fields = [pa.field(n, t) for n, t in zip(names, first.types, strict=True)]
    return pa.schema(fields, metadata=metadata)


def dumps(notes: Notes) -> bytes:
    """The reader's notes as the staged file's metadata (READ_NOTES), read back by read_notes."""
    return json.dumps(
        {
            "guesses": [[g.what, g.detail, g.rule, g.notable] for g in notes.guesses],
            "preamble": list(notes.preamble),
            "fields": [list(pair) for pair in notes.fields],
            "footer": list(notes.footer),
        }
    ).encode()


def read_notes(staged: Staged) -> tuple[tuple[Guess, ...], FileMeta]:
    """What the reader guessed about the staged file, and the file's metadata."""
    raw = read_key_values(staged).get(READ_NOTES)
    if not raw:
        return (), FileMeta()
    notes = json.loads(raw)
    guesses = tuple(Guess(str(w), str(d), str(r), bool(n)) for w, d, r, n in notes["guesses"])
    meta = FileMeta(
        preamble=tuple(notes["preamble"]),
        fields=tuple((str(k), str(v)) for k, v in notes["fields"]),
        footer=tuple(notes["footer"]),
    )
    return guesses, meta


def _nonempty(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    return (b for b in batches if b.num_rows)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    faults.point("read")  # the first batch is written to staging
    yield from rest


def source_names(schema: pa.Schema) -> list[str]:
    raw = (schema.metadata or {}).get(SOURCE_NAMES)
    return list(json.loads(raw)) if raw else list(schema.names)


def json_columns(schema: pa.Schema) -> frozenset[str]:
    """Staged (safe) names of the columns that hold JSON text."""
    raw = (schema.metadata or {}).get(JSON_COLUMNS)
    sources = set(json.loads(raw)) if raw else set()
    pairs = zip(source_names(schema), schema.names, strict=True)
    return frozenset(name for source, name in pairs if source in sources)


def detect_source(path: Path) -> Source:
    """Unwrap compression by magic bytes; refuse what no reader reads, naming what it is."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise UnreadableFile("the file is empty", hint="check the producer; nothing to load")
    compression = next((c for m, c in _COMPRESSION.items() if head.startswith(m)), None)
    if compression == "zip":
        return _zip_member(path)
    return Source(path=path, compression=compression, name=path.name)


def _zip_member(path: Path) -> Source:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise UnreadableFile(
            f"a damaged zip archive or workbook ({exc})", hint="the file is truncated: re-send it"
        ) from exc
    if "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names):
        return Source(path=path, name=path.name)  # an Excel workbook is itself a zip
    data = [n for n in names if not n.endswith("/") and not _hidden(n)]
    if len(data) != 1:
        raise UnreadableFile(
            f"a zip archive with {len(data)} data files ({', '.join(data[:5])})",
            hint="put exactly one data file in each zip, or unzip the files into the inbox",
        )
    return Source(path=path, compression="zip", member=data[0], name=Path(data[0]).name)


def _hidden(name: str) -> bool:
    return name.startswith("__MACOSX/") or Path(name).name.startswith(".")


_READERS = {  # format -> (module under sluice.read.readers, function)
    "delimited": ("delimited", "open_delimited"),
    "json": ("json", "open_json"),
    "parquet": ("columnar", "open_parquet"),
    "arrow": ("columnar", "open_arrow"),
    "orc": ("columnar", "open_orc"),
    "excel": ("excel", "open_excel"),
}
_BINARY_MAGIC = {
    b"PAR1": "parquet",
    b"ARROW1": "arrow",  # Arrow IPC file (Feather v2)
    b"FEA1": "arrow",  # Feather v1
    b"\xff\xff\xff\xff": "arrow",  # Arrow IPC stream (continuation marker)
    b"ORC": "orc",
}
_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_SUFFIXES = {".json", ".ndjson", ".jsonl", ".geojson"}


def reader_for(source: Source) -> Reader:
    """The reader for the data: by content first, by name where content cannot tell."""
    module, function = _READERS[detect_format(source)]
    loaded = importlib.import_module(f"sluice.read.readers.{module}")
    reader: Reader = getattr(loaded, function)
    return reader


def detect_format(source: Source) -> str:
    head = source.head(8192)
    for magic, kind in _BINARY_MAGIC.items():
        if head.startswith(magic):
            return kind
    if head.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        return "excel"  # a workbook (_zip_member hands over a zip only then), or OLE2 .xls
    for magic, what in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise UnreadableFile(f"detected {what}, which Sluice does not read", hint=_HINT)
    if wide_encoding(head):
        return "delimited"  # the delimited reader transcodes; JSON must be UTF-8
    head = head.removeprefix(_UTF8_BOM)
    if b"\x00" in head:
        raise UnreadableFile("binary content (NUL bytes), not text", hint=_HINT)
    first = head.lstrip()[:1]
    if first in (b"[", b"{") and source.suffix not in {".csv", ".tsv", ".txt", ".tab"}:
        return "json"
    if source.suffix in _JSON_SUFFIXES:
        return "json"
    return "delimited"
