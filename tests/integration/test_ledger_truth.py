"""The ledger is the only truth: whatever Redis remembers, a file is loaded into a database
exactly when that database's `sluice.files` says so (real Redis and TimescaleDB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from pydantic import SecretStr
from typer.testing import CliRunner

from sluice import ledger
from sluice.catalog import ensure_catalog
from sluice.cli import app
from sluice.read import fingerprint
from sluice.settings import Settings
from sluice.state import checkpoints
from sluice.state.checkpoints import Keys
from tests.conftest import ADMIN_DSN, TEST_DB
from tests.data import weather_csv
from tests.fix_services import count_rows, drop_database, recreate_database

pytestmark = [pytest.mark.services, pytest.mark.flow]

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def other_database(database: str) -> Iterator[str]:
    """A second, empty TimescaleDB database on the same cluster (the same Redis serves both)."""
    name = f"{TEST_DB}_b"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        recreate_database(admin, name)
    with psycopg.connect(ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    yield database.rsplit("/", 1)[0] + f"/{name}"
    drop_database(name)


def _ledger_rows(dsn: str, file_id: str) -> int:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('sluice.files')").fetchone() == (None,):
            return 0
        row = conn.execute("SELECT count(*) FROM sluice.files WHERE file_id = %s", (file_id,))
        return int(row.fetchone()[0])  # type: ignore[index]


def _rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return count_rows(conn, table) if _exists(conn, table) else 0


def _exists(conn: Conn, table: str) -> bool:
    found = conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()
    return found is not None and found[0] is not None


def test_a_second_database_on_the_same_redis_loads_the_file_too(
    ingest: Any,
    home: Path,
    database: str,
    other_database: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reproduction of the data loss: database A loads a.csv, then database B (fresh, same
    Redis) must load it as well, not call it a duplicate of A's load."""
    path = weather_csv(home / "inbox" / "twodbs" / "a.csv", rows=90)
    file_id, _ = fingerprint(path)
    assert ingest(path).result().outcome == "loaded"

    monkeypatch.setattr(settings, "database_url", SecretStr(other_database))
    in_b = ingest(path).result()

    assert in_b.outcome == "loaded", in_b
    assert (_rows(other_database, "twodbs"), _ledger_rows(other_database, file_id)) == (90, 1)
    assert (_rows(database, "twodbs"), _ledger_rows(database, file_id)) == (90, 1)
    assert ledger.keys_for(database, "public") != ledger.keys_for(other_database, "public")


def test_the_sink_id_names_cluster_database_and_schema(database: str, other_database: str) -> None:
    with psycopg.connect(database) as a, psycopg.connect(other_database) as b:
        assert ledger.sink_id(a, "public") == ledger.sink_id(a, "public")
        assert ledger.sink_id(a, "public") != ledger.sink_id(b, "public")
        assert ledger.sink_id(a, "public") != ledger.sink_id(a, "staging")


def test_redis_restored_to_before_a_load_does_not_load_it_twice(
    ingest: Any, db: Conn, home: Path, redis_client: redis.Redis
) -> None:
    path = weather_csv(home / "inbox" / "restored" / "a.csv", rows=70)
    snapshot = {key: redis_client.dump(key) for key in redis_client.scan_iter()}
    assert ingest(path).result().outcome == "loaded"

    redis_client.flushdb()  # Redis comes back from the snapshot: it never saw the load
    for key, value in snapshot.items():
        if value is not None:
            redis_client.restore(key, 0, value, replace=True)
    again = ingest(path).result()

    assert again.outcome == "duplicate"
    assert count_rows(db, "restored") == 70


def test_a_ledger_row_an_operator_deleted_makes_the_file_load_again(
    ingest: Any, db: Conn, home: Path, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    """The operator removes the file's rows and its ledger row (a restore does the same); Redis
    still says `loaded`: that status is stale, and the next run loads the file."""
    path = weather_csv(home / "inbox" / "operator" / "a.csv", rows=60)
    file_id, _ = fingerprint(path)
    assert ingest(path).result().outcome == "loaded"
    db.execute(
        "DELETE FROM public.operator USING sluice.files f "
        "WHERE f.load_id = _load_id AND f.file_id = %s",
        (file_id,),
    )
    db.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))
    assert checkpoints.status_of(redis_client, sink_keys, file_id)["status"] == "loaded"

    again = ingest(path).result()

    assert again.outcome == "loaded"
    assert count_rows(db, "operator") == 60


def test_seen_marks_count_only_when_the_ledger_confirms_them(
    ingest: Any, db: Conn, home: Path, redis_client: redis.Redis, sink_keys: Keys
) -> None:
    """The sensor and the sweep skip a version whose seen-mark the ledger confirms; a mark
    whose file the ledger lacks no longer hides the file from them."""
    path = weather_csv(home / "inbox" / "marks" / "a.csv", rows=30)
    file_id, _ = fingerprint(path)
    assert ingest(path).result().outcome == "loaded"
    st = path.stat()
    version = [(str(path), st.st_size, st.st_mtime_ns)]
    assert checkpoints.seen_ids(redis_client, sink_keys, version) == [file_id]
    assert ledger.handled(db, redis_client, sink_keys, version) == [True]

    db.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))

    assert ledger.handled(db, redis_client, sink_keys, version) == [False]


def test_forget_makes_a_loaded_file_loadable_again(
    ingest: Any,
    db: Conn,
    database: str,
    home: Path,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    path = weather_csv(home / "inbox" / "forgotten" / "a.csv", rows=40)
    file_id, _ = fingerprint(path)
    assert ingest(path).result().outcome == "loaded"
    cli = CliRunner()

    refused = cli.invoke(app, ["forget", file_id[:12]])
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr and count_rows(db, "forgotten") == 40

    done = cli.invoke(app, ["forget", str(path), "--yes"])

    assert done.exit_code == 0, done.output
    assert "40 rows deleted from public.forgotten" in done.stdout
    assert count_rows(db, "forgotten") == 0
    assert _ledger_rows(database, file_id) == 0
    assert checkpoints.status_of(redis_client, sink_keys, file_id) == {}
    assert not list(redis_client.scan_iter(match=sink_keys.results_of(file_id)))
    forgotten = db.execute(
        "SELECT payload->>'rows' FROM sluice.outbox WHERE event = %s AND file_id = %s",
        (ledger.FORGOTTEN, file_id),
    ).fetchall()
    assert forgotten == [("40",)]

    again = ingest(path).result()
    assert again.outcome == "loaded"
    assert count_rows(db, "forgotten") == 40


def test_forget_of_an_unknown_file_says_so(ingest: Any, home: Path) -> None:
    result = CliRunner().invoke(app, ["forget", "0123abcd", "--yes"])

    assert result.exit_code == 1
    assert "is neither a file nor the id of a loaded file" in result.stderr


def test_rules_edited_during_a_run_do_not_reach_its_later_stages(
    ingest: Any,
    db: Conn,
    home: Path,
    settings: Settings,
    per_stage: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rules are read once, at fingerprint: a datasets.yaml (and suite) edited while the
    run is in `read` does not change what the later stages do, and the ledger row names the
    hash of the rules the run worked under."""
    import threading

    from sluice import faults
    from sluice.datasets import load_rules

    (home / "datasets.yaml").write_text("datasets:\n  midrun:\n    chunk_interval: 1 day\n")
    before = load_rules(settings.datasets, "midrun").digest()
    path = weather_csv(home / "inbox" / "midrun" / "a.csv", rows=50)
    in_read, edited = threading.Event(), threading.Event()
    point = faults.point

    def pause_in_read(name: str) -> None:
        if name == "read" and not in_read.is_set():
            in_read.set()
            assert edited.wait(60)
        point(name)

    monkeypatch.setattr(faults, "point", pause_in_read)
    outcome: list[Any] = []
    run = threading.Thread(target=lambda: outcome.append(ingest(path)))
    run.start()
    assert in_read.wait(120)  # the run is inside read, past fingerprint
    (home / "datasets.yaml").write_text("datasets:\n  midrun:\n    key: [no_such_column]\n")
    edited.set()
    run.join(timeout=120)

    state = outcome[0]
    assert state.is_completed(), state.message
    assert state.result().outcome == "loaded"
    [(rules_hash,)] = db.execute(
        "SELECT rules_hash FROM sluice.files WHERE dataset = 'midrun'"
    ).fetchall()
    assert rules_hash == before


def test_forget_on_a_database_sluice_never_wrote_to_finds_nothing(other_database: str) -> None:
    with psycopg.connect(other_database, autocommit=True) as conn:
        assert ledger.forget(conn, "ab" * 32) is None


def _rows_by_file(db: Conn, table: str, column: str) -> dict[str, int]:
    """The table's rows per file id, through `_load_id` and the ledger or by `_file_id`."""
    by = {
        "_load_id": "SELECT f.file_id, count(*) FROM {} t "
        "JOIN sluice.files f ON f.load_id = t._load_id GROUP BY 1",
        "_file_id": "SELECT _file_id, count(*) FROM {} GROUP BY 1",
    }[column]
    found = db.execute(sql.SQL(by).format(sql.Identifier("public", table))).fetchall()
    return {str(k): int(v) for k, v in found}


def _lineage_types(db: Conn, table: str) -> dict[str, str]:
    return dict(
        db.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            "table_schema = 'public' AND table_name = %s AND column_name LIKE '\\_%%'",
            (table,),
        ).fetchall()
    )


def test_each_row_names_its_file_by_the_ledger_rows_load_id(
    ingest: Any, db: Conn, home: Path
) -> None:
    """8 bytes a row: `_load_id` is the file's `sluice.files.load_id`, no hash in the table."""
    a = weather_csv(home / "inbox" / "by_load" / "a.csv", rows=30)
    b = weather_csv(home / "inbox" / "by_load" / "b.csv", rows=20)
    assert [ingest(p).result().outcome for p in (a, b)] == ["loaded", "loaded"]

    assert _lineage_types(db, "by_load") == {
        "_load_id": "bigint",
        "_row": "bigint",
        "_ingested_at": "timestamp with time zone",
    }
    assert _rows_by_file(db, "by_load", "_load_id") == {
        fingerprint(a)[0]: 30,
        fingerprint(b)[0]: 20,
    }


def test_a_table_from_before_load_id_loads_and_forgets_by_file_id(
    ingest: Any, db: Conn, home: Path
) -> None:
    """A table created when each row held its file's hash (`_file_id text`) keeps that shape:
    new files' rows carry their hash, and `sluice forget` finds them by it."""
    a = weather_csv(home / "inbox" / "by_hash" / "a.csv", rows=30)
    b = weather_csv(home / "inbox" / "by_hash" / "b.csv", rows=20)
    assert ingest(a).result().outcome == "loaded"
    db.execute(  # the table as an earlier Sluice made it
        "ALTER TABLE public.by_hash ADD COLUMN _file_id text; "
        "UPDATE public.by_hash t SET _file_id = f.file_id FROM sluice.files f "
        "WHERE f.load_id = t._load_id; "
        "ALTER TABLE public.by_hash ALTER _file_id SET NOT NULL, DROP COLUMN _load_id"
    )

    assert ingest(b).result().outcome == "loaded"

    assert "_load_id" not in _lineage_types(db, "by_hash")
    a_id, b_id = fingerprint(a)[0], fingerprint(b)[0]
    assert _rows_by_file(db, "by_hash", "_file_id") == {a_id: 30, b_id: 20}
    done = CliRunner().invoke(app, ["forget", b_id, "--yes"])
    assert done.exit_code == 0, done.output
    assert "20 rows deleted from public.by_hash" in done.stdout
    assert _rows_by_file(db, "by_hash", "_file_id") == {a_id: 30}


def test_forget_deletes_only_its_files_rows_by_load_id(ingest: Any, db: Conn, home: Path) -> None:
    a = weather_csv(home / "inbox" / "forget_one" / "a.csv", rows=30)
    b = weather_csv(home / "inbox" / "forget_one" / "b.csv", rows=20)
    assert [ingest(p).result().outcome for p in (a, b)] == ["loaded", "loaded"]

    done = CliRunner().invoke(app, ["forget", str(a), "--yes"])

    assert done.exit_code == 0, done.output
    assert "30 rows deleted from public.forget_one" in done.stdout
    assert _rows_by_file(db, "forget_one", "_load_id") == {fingerprint(b)[0]: 20}
    assert count_rows(db, "forget_one") == 20


def test_a_ledger_from_before_load_id_gains_one_for_every_file(other_database: str) -> None:
    with psycopg.connect(other_database, autocommit=True) as conn:
        conn.execute(  # sluice.files as it was before load_id, holding one file
            "CREATE SCHEMA sluice; CREATE TABLE sluice.files (file_id text PRIMARY KEY, "
            "dataset text NOT NULL, target text NOT NULL, path text NOT NULL, "
            "size bigint NOT NULL, rows bigint NOT NULL, rules_hash text NOT NULL, "
            "loaded_at timestamptz NOT NULL DEFAULT now(), file_meta jsonb); "
            "INSERT INTO sluice.files VALUES ('old', 'd', 'public.d', '/x', 1, 1, 'h')"
        )

        ensure_catalog(conn)

        old = conn.execute("SELECT load_id FROM sluice.files").fetchall()
        new = conn.execute(
            "INSERT INTO sluice.files VALUES ('new', 'd', 'public.d', '/y', 1, 1, 'h') "
            "RETURNING load_id"
        ).fetchall()
    assert old[0][0] is not None and new[0][0] is not None and old != new
