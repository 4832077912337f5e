"""The sink: ledger row, DDL, hypertable, schema evolution and binary COPY in one transaction.

Exactly once: the ledger row (`sluice.files`, primary key = content hash) is inserted first in
the same transaction as the rows, and its `load_id` is every row's `_load_id`. A concurrent load
of the same file blocks on that key and then finds it committed (`duplicate`); a crash before
commit leaves nothing visible; a retry after commit finds the ledger row and loads nothing. The
`sluice.file.loaded` outbox row is written last in that transaction, so the event exists exactly
when the rows do. A table created before `load_id` keeps `_file_id`, the hash, on its rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import cast

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from psycopg.types.json import Jsonb

from sluice import enrich, faults
from sluice.catalog import ensure_catalog
from sluice.contracts import FileRef, InferredSchema, LoadReport, PgType, Staged
from sluice.datasets import DatasetRules
from sluice.enrich import FILE_ID, LINEAGE_NAMES, LOAD_ID
from sluice.errors import SchemaConflict
from sluice.load import evolution, outbox
from sluice.load.pgcopy import iter_copy_parts
from sluice.load.prefetch import prefetched
from sluice.schema import guesses
from sluice.schema.casts import arrow_type

STAGE = "load"
log = logging.getLogger(__name__)
_Lineage = tuple[tuple[str, PgType], ...]  # (name, type) of each lineage column of a table
_ROW_AND_ARRIVAL: _Lineage = tuple(zip(LINEAGE_NAMES[1:], ("bigint", "timestamptz"), strict=True))
LINEAGE_COLUMNS: _Lineage = ((LOAD_ID, "bigint"), *_ROW_AND_ARRIVAL)  # a table's lineage
BY_HASH_COLUMNS: _Lineage = ((FILE_ID, "text"), *_ROW_AND_ARRIVAL)  # one's from before load_id
_INFO_TYPES: dict[str, PgType] = {
    "boolean": "boolean",
    "bigint": "bigint",
    "double precision": "double precision",
    "text": "text",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "jsonb": "jsonb",
    "time without time zone": "time",
    "numeric": "numeric",
}


def run(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    staged: Staged,
    schema: InferredSchema,
    rules: DatasetRules,
    *,
    schema_name: str,
    lock_timeout_s: float,
    batch_rows: int,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Load the staged rows and the ledger row in one transaction; `duplicate` if already there.

    `progress(rows)` is called with the rows sent so far as the COPY goes on.
    """
    return load_batches(
        conn,
        ref,
        schema,
        rules,
        enrich.batches(staged, batch_rows),
        schema_name=schema_name,
        lock_timeout_s=lock_timeout_s,
        rows=staged.rows,
        progress=progress,
    )


def load_batches(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    schema: InferredSchema,
    rules: DatasetRules,
    batches: Iterator[pa.RecordBatch],
    *,
    schema_name: str,
    lock_timeout_s: float,
    rows: int | None = None,
    progress: Callable[[int], None] | None = None,
    verdict: Callable[[], InferredSchema | None] | None = None,
) -> LoadReport:
    """Load `batches` (the schema's columns as their types, then the lineage columns) and the
    ledger row in one transaction; `duplicate` if the ledger has the file already.

    `rows` None: the ledger row counts the rows sent. `verdict()` runs after the COPY, inside
    the transaction: whatever it raises rolls back the rows, the ledger row and any DDL
    (sluice.onepass validates as the rows stream, and decides only once all are in); the schema
    it returns, if any, says what the ledger row's file_meta holds (a footer is known only at
    the file's end).
    """
    ensure_catalog(conn)
    target = sql.Identifier(schema_name, ref.dataset)
    label = f"{schema_name}.{ref.dataset}"
    with conn.transaction():
        conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{int(lock_timeout_s * 1000)}ms")
            )
        )
        load_id = _claim(conn, ref, rows or 0, label, guesses.for_ledger(schema))
        if load_id is None:
            return LoadReport(table=label, rows=0, outcome="duplicate")
        plan, by = _prepare_table(conn, ref, schema, rules, schema_name)
        sent = _copy(
            conn, target, batches, schema, plan, load_id if by == LOAD_ID else None, progress
        )
        final = verdict() if verdict is not None else None
        if rows is None or final is not None:
            meta = guesses.for_ledger(final) if final is not None else None
            conn.execute(
                "UPDATE sluice.files SET rows = %s, file_meta = COALESCE(%s, file_meta) "
                "WHERE file_id = %s",
                (sent, None if meta is None else Jsonb(meta), ref.file_id),
            )
        outbox.add(
            conn,
            outbox.LOADED,
            file_id=ref.file_id,
            dataset=ref.dataset,
            payload=_loaded(ref, sent, label, plan),
        )
    faults.point("commit")
    chunks = chunk_count(conn, schema_name, ref.dataset)
    return LoadReport(
        table=label,
        rows=sent,
        outcome="loaded",
        chunks=chunks,
        created=plan.create,
        added_columns=tuple(c.name for c in plan.add),
        widened_columns=tuple(c.name for c, _ in plan.widen),
    )


def _loaded(ref: FileRef, rows: int, label: str, plan: evolution.Plan) -> dict[str, object]:
    """The payload of the `sluice.file.loaded` event."""
    return {
        "file_id": ref.file_id,
        "dataset": ref.dataset,
        "table": label,
        "rows": rows,
        "path": ref.path,
        "size": ref.size,
        "created": plan.create,
        "added_columns": [c.name for c in plan.add],
        "widened_columns": [c.name for c, _ in plan.widen],
    }


def _claim(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    rows: int,
    label: str,
    file_meta: dict[str, object] | None,
) -> int | None:
    """The ledger row's load_id; None when the ledger has the file already."""
    meta = None if file_meta is None else Jsonb(file_meta)
    row = conn.execute(
        "INSERT INTO sluice.files "
        "(file_id, dataset, target, path, size, rows, rules_hash, file_meta) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (file_id) DO NOTHING "
        "RETURNING load_id",
        (ref.file_id, ref.dataset, label, ref.path, ref.size, rows, ref.rules_hash, meta),
    ).fetchone()
    return None if row is None else cast(int, row[0])


def _prepare_table(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    schema: InferredSchema,
    rules: DatasetRules,
    schema_name: str,
) -> tuple[evolution.Plan, str]:
    """The table's plan, and the column its rows name their file by (`file_column`)."""
    label = f"{schema_name}.{ref.dataset}"
    existing = table_columns(conn, schema_name, ref.dataset)
    plan = None
    if existing is not None:
        try:
            plan = evolution.plan(existing, schema, table=label, widen_to_text=rules.widen_to_text)
        except SchemaConflict:
            plan = None  # decided again under the lock, on the table as it is then
    if existing is None or plan is None or plan.changes:
        # DDL ahead: serialise it per table, and decide again on what is there once we hold it
        # (a concurrent load of the same dataset may have created or evolved the table).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (label,))
        existing = table_columns(conn, schema_name, ref.dataset)
        if existing is None:
            _create(conn, ref, schema, rules, schema_name)
            return evolution.Plan(create=True), LOAD_ID
        plan = evolution.plan(existing, schema, table=label, widen_to_text=rules.widen_to_text)
    target = sql.Identifier(schema_name, ref.dataset)
    for change, detail in evolution.apply(conn, target, plan):
        _history(conn, ref, schema_name, change, detail)
    return plan, file_column(existing)


def file_column(columns: Collection[str]) -> str:
    """The column a table's rows name their file by: `_load_id` (its ledger row's load_id), or
    `_file_id` (its hash) in a table created before load_id."""
    return FILE_ID if FILE_ID in columns and LOAD_ID not in columns else LOAD_ID


def table_columns(
    conn: psycopg.Connection[tuple[object, ...]], schema_name: str, table: str
) -> dict[str, PgType] | None:
    """The table's columns and their types; None when there is no such table."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s",
        (schema_name, table),
    ).fetchall()
    if not rows:
        return None
    return {str(name): _INFO_TYPES.get(str(kind), "text") for name, kind in rows}


def _create(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    schema: InferredSchema,
    rules: DatasetRules,
    schema_name: str,
) -> None:
    defs = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.pg_type),
            sql.SQL(" NOT NULL" if c.name == schema.time_column else ""),
        )
        for c in schema.columns
    ]
    defs += [
        sql.SQL("{} {} NOT NULL").format(sql.Identifier(n), sql.SQL(t)) for n, t in LINEAGE_COLUMNS
    ]
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)))
    conn.execute(
        sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(schema_name, ref.dataset), sql.SQL(", ").join(defs)
        )
    )
    conn.execute(
        "SELECT create_hypertable(%s::regclass, by_range(%s, %s::interval))",
        (
            f"{_quoted(schema_name)}.{_quoted(ref.dataset)}",
            schema.time_column,
            rules.chunk_interval,
        ),
    )
    _history(
        conn,
        ref,
        schema_name,
        "create",
        {
            "columns": {c.name: c.pg_type for c in schema.columns},
            "sources": {c.name: c.source for c in schema.columns},
            "time_column": schema.time_column,
        },
    )


def _quoted(identifier: str) -> str:
    """A regclass literal needs quoted identifiers; names are safe_identifier()'d, quoted anyway."""
    return '"' + identifier.replace('"', '""') + '"'


def _history(
    conn: psycopg.Connection[tuple[object, ...]],
    ref: FileRef,
    schema_name: str,
    change: str,
    detail: dict[str, object],
) -> None:
    conn.execute(
        "INSERT INTO sluice.schema_history (target, file_id, change, detail) "
        "VALUES (%s, %s, %s, %s)",
        (f"{schema_name}.{ref.dataset}", ref.file_id, change, Jsonb(detail)),
    )


def _copy(
    conn: psycopg.Connection[tuple[object, ...]],
    target: sql.Identifier,
    batches: Iterator[pa.RecordBatch],
    schema: InferredSchema,
    plan: evolution.Plan,
    load_id: int | None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """COPY the batches, each row's file as its `load_id` (None: as its hash, in a table from
    before load_id); returns the rows sent."""
    casts = dict(plan.casts)
    lineage = BY_HASH_COLUMNS
    if load_id is not None:
        batches, lineage = with_load_id(batches, load_id), LINEAGE_COLUMNS
    types = [casts.get(c.name, c.pg_type) for c in schema.columns] + [t for _, t in lineage]
    names = [c.name for c in schema.columns] + [n for n, _ in lineage]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    sent = 0
    with conn.cursor().copy(statement) as copy:
        # encoded in a thread a few chunks ahead, while the server ingests the one before
        for chunk, rows in prefetched(iter_copy_parts(_cast_batches(batches, casts), types)):
            copy.write(chunk)
            faults.point("copy")
            if rows:
                sent += rows
                if progress is not None:
                    progress(sent)
    return sent


def with_load_id(batches: Iterator[pa.RecordBatch], load_id: int) -> Iterator[pa.RecordBatch]:
    """The batches with the file's load_id where enrich put its hash (`_file_id`)."""
    for batch in batches:
        at = batch.schema.get_field_index(FILE_ID)
        column = pa.repeat(pa.scalar(load_id, pa.int64()), batch.num_rows)
        yield batch.set_column(at, LOAD_ID, column)


def _cast_batches(
    batches: Iterator[pa.RecordBatch], casts: dict[str, PgType]
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if not casts:
            yield batch
            continue
        arrays: Sequence[pa.Array] = [
            pc.cast(arr, arrow_type(casts[name])) if name in casts else arr
            for name, arr in zip(batch.schema.names, batch.columns, strict=True)
        ]
        yield pa.RecordBatch.from_arrays(list(arrays), names=batch.schema.names)


def chunk_count(conn: psycopg.Connection[tuple[object, ...]], schema_name: str, table: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = %s AND hypertable_name = %s",
        (schema_name, table),
    ).fetchone()
    count = row[0] if row else 0
    return count if isinstance(count, int) else 0
