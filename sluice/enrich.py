"""Lineage columns: each row knows its file (`_file_id`), place (`_row`) and arrival.

Rows that row-level validation set aside are left out; the others keep their `_row`, their
1-based place in the file. In the table, the file is `_load_id`, its ledger row's 8-byte
`load_id` (sluice/load/transaction.py swaps it in as the rows go): the 64-character hash on
every row had doubled a narrow table. enrich writes nothing: its output is the staged data plus a
`Lineage`, and `batches()` adds the columns as transform or load read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from sluice.contracts import FileRef, Lineage, Rejected, Staged
from sluice.staging import iter_batches, read_schema
from sluice.validate.reject import keep_mask, rejected_rows

STAGE = "enrich"
INGESTED_AT = "_ingested_at"  # also the time dimension of a file without a time column
LINEAGE: tuple[pa.Field, ...] = (
    pa.field("_file_id", pa.string(), nullable=False),
    pa.field("_row", pa.int64(), nullable=False),  # 1-based data row number in the file
    pa.field(INGESTED_AT, pa.timestamp("us", "UTC"), nullable=False),
)
LINEAGE_NAMES = tuple(f.name for f in LINEAGE)
FILE_ID = LINEAGE_NAMES[0]
LOAD_ID = "_load_id"  # the table's column for the file: sluice.files.load_id


def run(ref: FileRef, staged: Staged, rejected: Rejected | None = None) -> Staged:
    """The staged columns plus the lineage columns, without the `rejected` rows (row-level
    validation): described, not written (`batches()` adds them as the load reads). A copy of
    the whole file with three more columns cost 0.96 s of 2M rows' ~13 s ingest."""
    skip = rejected_rows(rejected)  # the rows file must be there (StagingLost otherwise)
    read_schema(staged)  # and so must the staged data
    return Staged(
        uri=staged.uri,
        rows=staged.rows - len(skip),
        columns=(*staged.columns, *LINEAGE_NAMES),
        lineage=Lineage(ref.file_id, datetime.now(UTC), rejected),
    )


def schema(staged: Staged) -> pa.Schema:
    """The Arrow schema of what batches() yields."""
    base = read_schema(staged)
    if staged.lineage is None:
        return base
    return pa.schema(list(base) + list(LINEAGE), metadata=base.metadata)


def batches(staged: Staged, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The staged rows; with lineage, its columns added and the rejected rows left out."""
    if (lineage := staged.lineage) is None:
        yield from iter_batches(staged, batch_rows)
        return
    yield from with_lineage(
        iter_batches(staged, batch_rows),
        schema(staged),
        lineage.file_id,
        lineage.ingested_at,
        rejected_rows(lineage.rejected),
    )


def with_lineage(
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    file_id: str,
    now: datetime,
    skip: np.ndarray,
) -> Iterator[pa.RecordBatch]:
    """The batches (the file's rows in order) with the lineage columns, `skip` rows left out
    (1-based row numbers, sorted)."""
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
