"""The staging area: one folder per file id holding each stage's Parquet; written atomically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.contracts import Staged
from sluice.errors import StagingLost

WRITE_OPTIONS: dict[str, object] = {
    "compression": "lz4",
    "use_dictionary": False,
    "write_statistics": False,
}


def stage_path(staging: Path, file_id: str, name: str) -> Path:
    return staging / file_id / f"{name}.parquet"


def _existing(staged: Staged) -> str:
    if not Path(staged.uri).is_file():
        raise StagingLost(
            f"staged data {staged.uri} is gone", hint="the file is staged again automatically"
        )
    return staged.uri


def iter_batches(staged: Staged, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of a staged file, never more than `batch_rows` rows in memory at once."""
    # pre_buffer=False: pyarrow's default pre-buffering holds the whole file's column chunks
    # until the read ends (187 MB for 8M rows, against 17 MB without it).
    with pq.ParquetFile(_existing(staged), pre_buffer=False) as parquet:
        yield from parquet.iter_batches(batch_size=batch_rows)


def read_schema(staged: Staged) -> pa.Schema:
    return pq.read_schema(_existing(staged))


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_batches(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Staged:
    """Stream batches into Parquet at `path` (renamed into place only when complete).

    LZ4 without dictionary encoding or statistics: staged data is written once and read once
    or twice before the load commits; dictionary encoding cost 2.5x the write time (2M rows,
    8 columns: 1.21 s against 0.49 s) for 16% less disk.
    """
    rows = 0
    with _atomic(path) as tmp, pq.ParquetWriter(tmp, schema, **WRITE_OPTIONS) as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return Staged(uri=str(path), rows=rows, columns=tuple(schema.names))


def remove(staging: Path, file_id: str) -> None:
    """Drop everything staged for one file (after its load committed)."""
    shutil.rmtree(staging / file_id, ignore_errors=True)
