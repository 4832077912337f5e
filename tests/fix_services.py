"""Fixtures for the real services: a fresh database with TimescaleDB, a Redis DB, a clean home."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql

from sluice import ledger
from sluice.settings import Settings, get_settings
from sluice.state.checkpoints import Keys
from tests.conftest import ADMIN_DSN, TEST_DB


def _unavailable(reason: str) -> None:
    message = f"{reason}; start them with `bash scripts/services.sh up redis postgres`"
    if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    """A database of this test session, owned by the `sluice` role, with TimescaleDB."""
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable(f"PostgreSQL is not reachable ({exc})")
    with admin:
        recreate_database(admin, TEST_DB)
    with psycopg.connect(ADMIN_DSN.rsplit("/", 1)[0] + f"/{TEST_DB}", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    yield settings.dsn()
    drop_database(TEST_DB)


def recreate_database(admin: psycopg.Connection[Any], name: str) -> None:
    """A new, empty database `name` owned by the `sluice` role (one left by an earlier session
    of the same name dropped first)."""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("CREATE DATABASE {} OWNER sluice").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    """Drop the database, whatever still connects to it."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        _unavailable(f"Redis is not reachable ({exc})")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def sink_keys(database: str, settings: Settings) -> Keys:
    """The Redis keys of the test database's sink (what the flows of this session write)."""
    return ledger.keys_for(database, settings.schema_name)


@pytest.fixture
def db(database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(database, autocommit=True) as conn:
        yield conn


@pytest.fixture
def home(settings: Settings) -> Iterator[Path]:
    """SLUICE_HOME emptied before each test (inbox, staging, quarantine, the demo's home), and no
    rules: neither datasets.yaml nor suites by name beside it (expectations/)."""
    for name in ("inbox", "staging", "quarantine"):
        shutil.rmtree(settings.home / name, ignore_errors=True)
        (settings.home / name).mkdir(parents=True)
    shutil.rmtree(settings.home / "demo", ignore_errors=True)
    shutil.rmtree(settings.datasets.parent / "expectations", ignore_errors=True)
    settings.datasets.unlink(missing_ok=True)
    yield settings.home


def count_rows(db: psycopg.Connection[Any], table: str, where: str = "TRUE") -> int:
    """Rows of public.<table> (matching `where`, a fixed SQL condition from the test)."""
    row = db.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(sql.Identifier("public", table))
    ).fetchone()
    return int(row[0]) if row else 0


def doubled_rows(db: psycopg.Connection[Any], table: str) -> int:
    """Rows of public.<table> beyond one per (file, row): a row twice, or a row whose `_load_id`
    no ledger row has (a load the ledger does not hold). 0 when loads were exactly once."""
    row = db.execute(
        sql.SQL(
            "SELECT (SELECT count(*) FROM {0}) - (SELECT count(DISTINCT (f.file_id, t._row)) "
            "FROM {0} t JOIN sluice.files f ON f.load_id = t._load_id)"
        ).format(sql.Identifier("public", table))
    ).fetchone()
    return int(row[0]) if row else -1
