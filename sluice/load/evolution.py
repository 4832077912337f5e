"""Schema evolution against the live table: what a file needs from it, and the DDL that does it.

For each file column: absent from the table -> ADD COLUMN (nullable); the table's type is wider
-> the file's values are cast to it; the file's type is wider and the widening is safe
(bigint -> double precision or numeric, date -> timestamptz, anything -> text where the dataset
allows it) -> ALTER COLUMN ... TYPE in the load's transaction; anything else is a conflict that
names both types and the two ways out. Table columns absent from the file load as NULL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from sluice.contracts import Column, InferredSchema, PgType
from sluice.enrich import LINEAGE_NAMES, LOAD_ID
from sluice.errors import SchemaConflict

log = logging.getLogger(__name__)

# file type -> table types that take its values without loss (the batch is cast to the table's)
NARROWER: dict[PgType, frozenset[PgType]] = {
    "bigint": frozenset({"numeric", "double precision", "text"}),
    "double precision": frozenset({"text"}),
    "numeric": frozenset({"text"}),
    "boolean": frozenset({"text"}),
    "date": frozenset({"timestamptz", "timestamp", "text"}),
    "time": frozenset({"text"}),
    "timestamptz": frozenset({"text"}),
    "timestamp": frozenset({"text"}),
    "jsonb": frozenset({"text"}),
    "text": frozenset(),
}
# (table type, file type) -> how ALTER COLUMN ... TYPE converts the stored values
WIDENINGS: dict[tuple[PgType, PgType], str] = {
    ("bigint", "double precision"): "{}::double precision",
    ("bigint", "numeric"): "{}::numeric",
    ("date", "timestamptz"): "({}::timestamp AT TIME ZONE 'UTC')",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Columns to add, table columns to widen, and file columns cast to the table's type."""

    create: bool
    add: tuple[Column, ...] = ()
    widen: tuple[tuple[Column, PgType], ...] = ()  # (file column, the table's type before)
    casts: tuple[tuple[str, PgType], ...] = ()

    @property
    def changes(self) -> bool:
        """Whether the table needs DDL (columns added or widened)."""
        return bool(self.add or self.widen)


def plan(
    existing: dict[str, PgType], schema: InferredSchema, *, table: str, widen_to_text: bool
) -> Plan:
    """What loading `schema` into a table with `existing` columns needs; raises SchemaConflict."""
    add, widen, casts = [], [], []
    for col in schema.columns:
        have = existing.get(col.name)
        if have is None:
            add.append(col)
        elif have == col.pg_type:
            continue
        elif have in NARROWER[col.pg_type]:
            casts.append((col.name, have))
        elif (have, col.pg_type) in WIDENINGS or (col.pg_type == "text" and widen_to_text):
            widen.append((col, have))
        else:
            raise _conflict(col, have, table)
    missing = set(existing) - {c.name for c in schema.columns} - {*LINEAGE_NAMES, LOAD_ID}
    if missing:
        log.info("columns absent from the file load as NULL: %s", sorted(missing))
    return Plan(create=False, add=tuple(add), widen=tuple(widen), casts=tuple(casts))


def _conflict(col: Column, have: PgType, table: str) -> SchemaConflict:
    return SchemaConflict(
        f"column {col.source!r} holds {col.pg_type} in this file but {have} in {table}",
        hint=f"either add `types: {{{col.name}: {have}}}` to the dataset in datasets.yaml "
        "(values that do not convert then fail the file), or load the file as a new dataset "
        "(--dataset NAME, or another inbox folder)",
    )


def apply(
    conn: psycopg.Connection[tuple[object, ...]], target: sql.Identifier, evolution: Plan
) -> list[tuple[str, dict[str, object]]]:
    """Run the plan's DDL in the caller's transaction; returns (change, detail) for the history."""
    changes: list[tuple[str, dict[str, object]]] = []
    for col in evolution.add:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                target, sql.Identifier(col.name), sql.SQL(col.pg_type)
            )
        )
        changes.append(
            ("add_column", {"column": col.name, "source": col.source, "type": col.pg_type})
        )
    for col, before in evolution.widen:
        using = WIDENINGS.get((before, col.pg_type), "{}::text")
        conn.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING " + using).format(
                target, sql.Identifier(col.name), sql.SQL(col.pg_type), sql.Identifier(col.name)
            )
        )
        changes.append(
            (
                "widen_column",
                {"column": col.name, "source": col.source, "from": before, "to": col.pg_type},
            )
        )
    return changes
