"""Lineage columns: each row knows its file (`_file_id`), place (`_row`) and arrival."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from sluice.contracts import FileRef, Staged
from sluice.staging import iter_batches, read_schema, stage_path, write_batches

STAGE = "enrich"
INGESTED_AT = "_ingested_at"  # also the time dimension of a file without a time column
LINEAGE: tuple[pa.Field, ...] = (
    pa.field("_file_id", pa.string(), nullable=False),
    pa.field("_row", pa.int64(), nullable=False),  # 1-based data row number in the file
    pa.field(INGESTED_AT, pa.timestamp("us", "UTC"), nullable=False),
)
LINEAGE_NAMES = tuple(f.name for f in LINEAGE)


def run(ref: FileRef, staged: Staged, staging: Path, batch_rows: int) -> Staged:
    """Stage `enriched.parquet`: the raw columns plus the lineage columns."""
    raw_schema = read_schema(staged)
    schema = pa.schema(list(raw_schema) + list(LINEAGE), metadata=raw_schema.metadata)
    now = datetime.now(UTC)
    batches = _with_lineage(iter_batches(staged, batch_rows), schema, ref.file_id, now)
    return write_batches(stage_path(staging, ref.file_id, "enriched"), schema, batches)


def _with_lineage(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, file_id: str, now: datetime
) -> Iterator[pa.RecordBatch]:
    first = 1
    for batch in batches:
        n = batch.num_rows
        lineage = [
            pa.repeat(pa.scalar(file_id, pa.string()), n),
            pa.array(np.arange(first, first + n, dtype=np.int64)),
            pa.repeat(pa.scalar(now, pa.timestamp("us", "UTC")), n),
        ]
        first += n
        yield pa.RecordBatch.from_arrays([*batch.columns, *lineage], schema=schema)
