"""The format matrix: every edge-case file through the real flow to its expected outcome."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml
from psycopg import sql

from sluice import catalog
from sluice.settings import Settings
from sluice.state.checkpoints import Keys
from tests.fixtures import layouts
from tests.fixtures.formats import CASES, Case

pytestmark = [pytest.mark.services, pytest.mark.flow]
MATRIX = CASES + layouts.CASES


@pytest.fixture(params=["small", "one_pass"])
def ingest(
    request: pytest.FixtureRequest,
    prefect_api: None,
    database: str,
    redis_client: redis.Redis,
    home: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """The flow, on a small file's path (stages staged, one task) or a large file's (one pass
    inside the load's transaction): the same file must reach the same outcome on both."""
    from flows.ingest_file import ingest_file

    if request.param == "one_pass":
        monkeypatch.setattr(settings, "fuse_below_bytes", 0)
        monkeypatch.setattr(settings, "one_pass", True)
    return ingest_file


@pytest.fixture(autouse=True)
def fresh(db: psycopg.Connection[Any], request: pytest.FixtureRequest) -> None:
    """The case's file not in the ledger and its table gone: both paths load the same bytes."""
    case = request.node.callspec.params["case"]

    catalog.ensure_catalog(db)
    file_id = hashlib.sha256(case.build()).hexdigest()
    db.execute("DELETE FROM sluice.files WHERE file_id = %s", (file_id,))
    db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("public", case.dataset)))


def _place(case: Case, home: Path, settings: Settings) -> Path:
    path = home / "inbox" / case.dataset / case.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.build())
    if case.rules:
        settings.datasets.write_text(yaml.safe_dump({"datasets": {case.dataset: case.rules}}))
    return path


def _user_types(db: psycopg.Connection[Any], table: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE "
        "table_schema = 'public' AND table_name = %s AND column_name NOT IN "
        "('_load_id', '_row', '_ingested_at') ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize("case", [c for c in MATRIX if not c.error], ids=lambda c: c.name)
def test_file_loads_with_the_expected_types(
    case: Case, ingest: Any, db: psycopg.Connection[Any], home: Path, settings: Settings
) -> None:
    state = ingest(path=str(_place(case, home, settings)), return_state=True)

    assert state.is_completed(), state.message
    assert state.result().rows == case.rows
    assert _user_types(db, case.dataset) == case.types
    table = sql.Identifier("public", case.dataset)
    count = db.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    assert count == (case.rows,)
    query, expected = case.check
    if query:
        text = query.format(table=table.as_string(db), name=case.dataset)
        assert db.execute(text).fetchone() == (expected,)


@pytest.mark.parametrize("case", [c for c in MATRIX if c.error], ids=lambda c: c.name)
def test_bad_file_is_quarantined_with_a_clear_reason(
    case: Case,
    ingest: Any,
    db: psycopg.Connection[Any],
    home: Path,
    settings: Settings,
    redis_client: redis.Redis,
    sink_keys: Keys,
) -> None:
    path = _place(case, home, settings)

    state = ingest(path=str(path), return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert type(error).__name__ == case.error
    assert (error.stage, error.file) == (case.stage, str(path))
    assert case.message in str(error) and error.hint
    assert not path.exists()
    [kept] = (home / "quarantine" / case.dataset).iterdir()
    assert kept.read_bytes() == case.build()
    letter = {k.decode(): v.decode() for k, v in redis_client.xrange(sink_keys.dead)[-1][1].items()}
    assert (letter["dataset"], letter["stage"]) == (case.dataset, case.stage)
    assert db.execute("SELECT to_regclass(%s)", (f"public.{case.dataset}",)).fetchone() == (None,)
