"""The ledger's answers: which sink a process speaks for, and which files are loaded there.

`sluice.files` in the target database is the only answer to "is this file loaded". Redis
remembers hints (a file's status, the seen-marks of inbox versions), scoped to the sink by
`Keys(sink_id(...))`; a hint is used only after the ledger confirms it, and a Redis `loaded`
the ledger does not hold is stale: it is logged and the file is loaded.

A sink is one schema of one database of one PostgreSQL cluster: its id hashes the cluster's
`system_identifier` (fixed at initdb, the same on every replica), the database name and
`SLUICE_SCHEMA`. A database dropped and created again under its name keeps its id; what it held
is then decided by its (empty) ledger, not by Redis.

`forget` is the one way to make a loaded file loadable again (`sluice forget`): its rows and
its ledger row go in one transaction, then its Redis keys (checkpoints.forget_file).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

from sluice import staging
from sluice.catalog import connect, ensure_catalog
from sluice.enrich import LOAD_ID
from sluice.errors import SluiceError
from sluice.load import outbox
from sluice.load.transaction import file_column, table_columns
from sluice.settings import Settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys

FORGOTTEN = "sluice.file.forgotten"

Conn = psycopg.Connection[tuple[Any, ...]]
log = logging.getLogger(__name__)


def sink_id(conn: Conn, schema: str) -> str:
    """12 hex digits naming (cluster, database, schema)."""
    row = conn.execute(
        "SELECT system_identifier::text, current_database() FROM pg_control_system()"
    ).fetchone()
    assert row is not None  # pg_control_system() returns one row
    return hashlib.sha256(f"{row[0]}\0{row[1]}\0{schema}".encode()).hexdigest()[:12]


def keys(conn: Conn, schema: str) -> Keys:
    return Keys(sink_id(conn, schema))


@cache
def keys_for(dsn: str, schema: str) -> Keys:
    """The sink's keys, asked of the database once per process, DSN and schema."""
    with connect(dsn) as conn:
        return keys(conn, schema)


def loaded_among(conn: Conn, file_ids: Iterable[str]) -> set[str]:
    """Which of these file ids the ledger holds (one query)."""
    ids = sorted(set(file_ids))
    if not ids:
        return set()
    ensure_catalog(conn)
    rows = conn.execute("SELECT file_id FROM sluice.files WHERE file_id = ANY(%s)", (ids,))
    return {str(row[0]) for row in rows}


def handled(
    conn: Conn, r: redis.Redis, keys: Keys, versions: Sequence[tuple[str, int, int]]
) -> list[bool]:
    """For each (path, size, mtime_ns): loaded already? A seen-mark names the version's file id
    (so nobody hashes it again); the ledger says whether that file is loaded. A mark whose file
    the ledger lacks (a restored or different database, a row an operator deleted) is stale."""
    marks = checkpoints.seen_ids(r, keys, list(versions))
    loaded = loaded_among(conn, (m for m in marks if m))
    stale = [v[0] for v, m in zip(versions, marks, strict=True) if m and m not in loaded]
    if stale:
        log.warning(
            "%d inbox file(s) marked loaded in Redis are not in the ledger (e.g. %s): "
            "they will be loaded",
            len(stale),
            stale[0],
        )
    return [m is not None and m in loaded for m in marks]


class ForgetError(SluiceError):
    """A forget cannot be done as asked; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget` removed from the database."""

    file_id: str
    dataset: str
    target: str  # schema.table its rows were in
    rows: int  # rows deleted from that table


def find(conn: Conn, key: str) -> tuple[str, str, str] | None:
    """(file_id, dataset, target) of the ledger row whose file id is `key` or starts with it;
    None when there is none. A prefix that matches several files is an error."""
    ensure_catalog(conn)
    rows = conn.execute(
        "SELECT file_id, dataset, target FROM sluice.files WHERE file_id LIKE %s LIMIT 2",
        (key.lower().replace("%", "").replace("_", "") + "%",),
    ).fetchall()
    if len(rows) > 1:
        raise ForgetError(
            f"{key!r} matches more than one loaded file",
            stage="forget",
            hint="give more digits of the file id (`psql ... -c 'select * from sluice.files'`)",
        )
    return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None


def forget(conn: Conn, file_id: str) -> Forgotten | None:
    """Delete a file's rows from its table and its ledger row in one transaction, and record a
    `sluice.file.forgotten` outbox event with them; None when the ledger has no such file."""
    ensure_catalog(conn)  # a database Sluice never wrote to has no ledger yet: nothing to forget
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM sluice.files WHERE file_id = %s RETURNING dataset, target, load_id",
            (file_id,),
        ).fetchone()
        if row is None:
            return None
        dataset, target, load_id = str(row[0]), str(row[1]), row[2]
        schema_name, table = target.rsplit(".", 1)  # a dataset is a safe identifier: no dots
        deleted = 0
        if (columns := table_columns(conn, schema_name, table)) is not None:
            column = file_column(columns)
            key = load_id if column == LOAD_ID else file_id
            deleted = conn.execute(
                sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                    sql.Identifier(schema_name, table), sql.Identifier(column)
                ),
                (key,),
            ).rowcount
        outbox.add(
            conn,
            FORGOTTEN,
            file_id=file_id,
            dataset=dataset,
            payload={"file_id": file_id, "table": target, "rows": deleted},
        )
    return Forgotten(file_id=file_id, dataset=dataset, target=target, rows=deleted)


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What `sluice forget` did: the ledger's part (None: the ledger had no such file) and the
    Redis keys and staging it removed."""

    file_id: str
    forgotten: Forgotten | None
    redis_keys: int


def resolve(conn: Conn, key: str) -> str:
    """A file id from a path (its content hash) or from a file id or unique prefix of one in
    the ledger; a full 64-digit id the ledger lacks is taken as it is (Redis may know it)."""
    path = Path(key).expanduser()
    if path.is_file():
        from sluice.read import fingerprint  # pyarrow comes with sluice.read: only when needed

        return fingerprint(path)[0]
    found = find(conn, key)
    if found is not None:
        return found[0]
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key.lower()):
        return key.lower()
    raise ForgetError(
        f"{key!r} is neither a file nor the id of a loaded file",
        stage="forget",
        hint="give the file's path, or its id as `sluice ingest` printed it",
    )


def forget_everywhere(settings: Settings, file_id: str) -> ForgetReport:
    """Make the file loadable again: its rows and ledger row (one transaction), then its
    Redis keys in this sink and its staged data."""
    with connect(settings.dsn()) as conn:
        scope = keys(conn, settings.schema_name)
        forgotten = forget(conn, file_id)
    with checkpoints.client(settings.redis_url.get_secret_value()) as r:
        removed = checkpoints.forget_file(r, scope, file_id)
    staging.remove(settings.staging, file_id)
    return ForgetReport(file_id=file_id, forgotten=forgotten, redis_keys=removed)
