"""Load-ready batches: inferred types applied, UTC timestamps, target column names and order."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from sluice import enrich
from sluice.contracts import FileRef, InferredSchema, Staged
from sluice.datasets import DatasetRules
from sluice.enrich import LINEAGE, LINEAGE_NAMES
from sluice.schema.casts import arrow_type, convert_columns
from sluice.staging import Location, stage_path, write_batches

STAGE = "transform"


def target_schema(schema: InferredSchema) -> pa.Schema:
    fields = [
        pa.field(c.name, arrow_type(c.pg_type, c.scale), nullable=c.nullable)
        for c in schema.columns
    ]
    return pa.schema(fields + list(LINEAGE))


def run(
    ref: FileRef,
    staged: Staged,
    schema: InferredSchema,
    rules: DatasetRules,
    staging: Location,
    batch_rows: int,
) -> Staged:
    """Stage `load.parquet`, the exact columns and types load will COPY; when `staged` holds
    them already (enrich read the profile's typed copy), `staged` itself, rewritten by no one:
    on 2M rows, 8 columns that write cost 0.75 s of the 1.4 s a rewrite took."""
    target = target_schema(schema)
    if _typed_as(enrich.schema(staged), target):
        return staged
    batches = _typed(enrich.batches(staged, batch_rows), schema, target, rules.time_zone)
    return write_batches(stage_path(staging, ref.file_id, "load"), target, batches)


def _typed_as(schema: pa.Schema, target: pa.Schema) -> bool:
    """Same names, order and types (nullability aside: the table's NOT NULL checks that)."""
    return bool(schema.names == target.names and schema.types == target.types)


def _typed(
    batches: Iterator[pa.RecordBatch], schema: InferredSchema, target: pa.Schema, tz: str
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        arrays = convert_columns(batch, schema.columns, tz)
        arrays += [batch.column(name) for name in LINEAGE_NAMES]
        yield pa.RecordBatch.from_arrays(arrays, schema=target)
