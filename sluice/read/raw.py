"""read: stream the file, as its format's reader opens it (sluice/read/detect.py), as Arrow
batches into staged Parquet.

The staged columns get safe names; the original names and which columns hold JSON travel in
the Parquet schema's metadata, and what the reader guessed and found besides the rows (the
preamble, a footer) in the file's metadata, written at its end (`read_notes`). Text formats
stage text, and `schema.infer` decides types over the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from sluice import faults
from sluice.contracts import FileMeta, FileRef, Guess, Staged
from sluice.datasets import DatasetRules
from sluice.errors import UnreadableFile
from sluice.names import unique_identifiers
from sluice.read.detect import detect_source, reader_for
from sluice.read.readers import Notes, Opened
from sluice.staging import Location, read_key_values, stage_path, write_batches

STAGE = "read"
SOURCE_NAMES = b"sluice.source_names"
JSON_COLUMNS = b"sluice.json_columns"
READ_NOTES = b"sluice.read_notes"


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
