"""Lineage columns: each row knows its file (`_file_id`), place (`_row`) and arrival.

Rows that row-level validation set aside are dropped here; the others keep their `_row`,
their 1-based place in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from sluice.contracts import FileRef, Rejected, Staged
from sluice.reject import keep_mask, rejected_rows
from sluice.staging import Location, iter_batches, read_schema, stage_path, write_batches

STAGE = "enrich"
INGESTED_AT = "_ingested_at"  # also the time dimension of a file without a time column
LINEAGE: tuple[pa.Field, ...] = (
    pa.field("_file_id", pa.string(), nullable=False),
    pa.field("_row", pa.int64(), nullable=False),  # 1-based data row number in the file
    pa.field(INGESTED_AT, pa.timestamp("us", "UTC"), nullable=False),
)
LINEAGE_NAMES = tuple(f.name for f in LINEAGE)


def run(
    ref: FileRef,
    staged: Staged,
    staging: Location,
    batch_rows: int,
    rejected: Rejected | None = None,
) -> Staged:
    """Stage `enriched.parquet`: the staged columns plus the lineage columns, without the
    `rejected` rows (row-level validation)."""
    raw_schema = read_schema(staged)
    schema = pa.schema(list(raw_schema) + list(LINEAGE), metadata=raw_schema.metadata)
    now = datetime.now(UTC)
    skip = rejected_rows(rejected)
    batches = _with_lineage(iter_batches(staged, batch_rows), schema, ref.file_id, now, skip)
    return write_batches(stage_path(staging, ref.file_id, "enriched"), schema, batches)


def _with_lineage(
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    file_id: str,
    now: datetime,
    skip: np.ndarray,
) -> Iterator[pa.RecordBatch]:
    first = 1
    for batch in batches:
        n = batch.num_rows
        numbers = np.arange(first, first + n, dtype=np.int64)
        mask = keep_mask(first, n, skip)
        first += n
        kept = batch if mask is None else batch.filter(pa.array(mask))
        if mask is not None:
            numbers = numbers[mask]
        k = kept.num_rows
        lineage = [
            pa.repeat(pa.scalar(file_id, pa.string()), k),
            pa.array(numbers),
            pa.repeat(pa.scalar(now, pa.timestamp("us", "UTC")), k),
        ]
        yield pa.RecordBatch.from_arrays([*kept.columns, *lineage], schema=schema)
