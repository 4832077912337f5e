"""The catalog: Sluice's own tables in the sink's database, every DDL of them, the connection
to that database, and the ledger's one question, `is_loaded`.

    sluice.files            the ledger: one row per loaded file, written with its rows
    sluice.schema_history   every creation and evolution of a dataset's table
    sluice.outbox           events written in the transaction of what they report
    sluice.profiles         each file's profile and validation summary (drift's history)

Each table is created on first use, once per connection (`ensure_ddl`). A dataset's own
hypertable is the load's to create or evolve (sluice/load/transaction.py), in the load's
transaction.
"""

from __future__ import annotations

import weakref

import psycopg

from sluice import connections

connect = connections.connect  # an autocommit connection for a block, reused in the process

LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.files (
    file_id     text PRIMARY KEY,
    dataset     text NOT NULL,
    target      text NOT NULL,
    path        text NOT NULL,
    size        bigint NOT NULL,
    rows        bigint NOT NULL,
    rules_hash  text NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    file_meta   jsonb
);
CREATE TABLE IF NOT EXISTS sluice.schema_history (
    id          bigserial PRIMARY KEY,
    target      text NOT NULL,
    file_id     text NOT NULL,
    change      text NOT NULL,
    detail      jsonb NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS sluice.outbox (
    id            bigserial PRIMARY KEY,
    event         text NOT NULL,
    file_id       text NOT NULL,
    dataset       text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    stream_id     text
);
CREATE INDEX IF NOT EXISTS outbox_undelivered ON sluice.outbox (id) WHERE delivered_at IS NULL;
-- issue 14: how the file was read and what it said besides its rows (sluice/schema/guesses.py)
ALTER TABLE sluice.files ADD COLUMN IF NOT EXISTS file_meta jsonb;
"""
NEWEST_COLUMN = ("sluice.files", "file_meta")  # the catalog's last change: present, all are
PROFILES_DDL = """
CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.profiles (
    file_id      text NOT NULL,
    dataset      text NOT NULL,
    path         text NOT NULL,
    rows         bigint NOT NULL,
    profile      jsonb NOT NULL,
    validation   jsonb,
    profiled_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, dataset)
);
CREATE INDEX IF NOT EXISTS profiles_by_dataset ON sluice.profiles (dataset, profiled_at DESC);
"""

_CHECKED: weakref.WeakKeyDictionary[psycopg.Connection[tuple[object, ...]], set[str]] = (
    weakref.WeakKeyDictionary()
)


def ensure_ddl(
    conn: psycopg.Connection[tuple[object, ...]],
    newest: str,
    ddl: str,
    column: tuple[str, str] | None = None,
) -> None:
    """Run idempotent catalog DDL unless `newest` (its last table) and `column` (its last
    added column, as (table, column)) exist; serialised by an advisory lock, since concurrent
    CREATE ... IF NOT EXISTS races otherwise. One query when there is nothing to do, once per
    connection: a reused connection (sluice.connections) asks once, not per stage (Sluice never
    drops its catalog, and a dropped database ends the connections that saw it)."""
    checked = _CHECKED.setdefault(conn, set())
    table, name = column or (newest, "")
    if f"{newest}:{table}.{name}" in checked:
        return
    with conn.transaction():
        present = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND (%s = '' OR EXISTS (SELECT 1 FROM "
            "pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
            "AND NOT attisdropped))",
            (newest, name, table, name),
        ).fetchone()
        if not (present and present[0]):
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('sluice.catalog'))")
            conn.execute(ddl)
    checked.add(f"{newest}:{table}.{name}")


def ensure_catalog(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create Sluice's own tables once. The check is on the newest table and column, so a
    database whose catalog predates them gets them too (`ADD COLUMN IF NOT EXISTS`)."""
    ensure_ddl(conn, "sluice.outbox", LEDGER_DDL, NEWEST_COLUMN)


def is_loaded(conn: psycopg.Connection[tuple[object, ...]], file_id: str) -> bool:
    """Whether the ledger holds this content (the catalog is created on first use)."""
    ensure_catalog(conn)
    row = conn.execute("SELECT 1 FROM sluice.files WHERE file_id = %s", (file_id,)).fetchone()
    return row is not None


def ensure_profiles(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create `sluice.profiles` (and the ledger it joins) once, serialised like the catalog."""
    ensure_catalog(conn)
    ensure_ddl(conn, "sluice.profiles", PROFILES_DDL)
