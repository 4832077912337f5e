"""What Sluice guessed about a file, end to end (issue 14): on `sluice ingest`'s line, in the
run's summary artifact (the `reading` table, with the rule that overrides each guess and the
file's metadata), and with the file's ledger row; and the ledger's new column on a catalog
that predates it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from typer.testing import CliRunner

from sluice import catalog
from sluice.cli import app
from tests.fixtures.layouts import nsrdb, pvgis_tmy

pytestmark = [pytest.mark.services, pytest.mark.flow]


@pytest.fixture
def cli(prefect_api: None, database: str, redis_client: redis.Redis, home: Path) -> CliRunner:
    return CliRunner()


def _summary(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                sort=ArtifactSort.CREATED_DESC,
                limit=1,
            )

    [artifact] = asyncio.run(read())
    return str(artifact.data)


def test_the_guesses_are_on_the_ingest_line_in_the_summary_and_with_the_ledger_row(
    cli: CliRunner, home: Path, db: psycopg.Connection[Any]
) -> None:
    path = home / "inbox" / "guessed" / "psm3.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(nsrdb(days=2))  # not the format matrix's file: that one is loaded

    result = cli.invoke(app, ["ingest", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.split()[:2] == ["loaded", "96"]
    assert (
        "note: header on line 3, 2 metadata lines kept; 6 unnamed columns without a value left "
        "out; time from Year, Month, Day, Hour, Minute, local time in UTC"
    ) in result.stderr
    summary = _summary("summary-guessed")
    assert "#### reading" in summary
    assert "| header | header on line 3, 2 metadata lines kept | header_row: 3 |" in summary
    assert "| metadata | Time Zone=-7 |  |" in summary
    [(meta,)] = db.execute(
        "SELECT file_meta FROM sluice.files WHERE path = %s", (str(path),)
    ).fetchall()
    assert ["Time Zone", "-7"] in meta["fields"]
    assert meta["preamble"][0].startswith("Source,Location ID,City")
    assert {"what": "header", "value": "header on line 3, 2 metadata lines kept",
            "rule": "header_row: 3"} in meta["guesses"]  # fmt: skip


def test_a_footer_is_kept_with_the_ledger_row(
    cli: CliRunner, home: Path, db: psycopg.Connection[Any]
) -> None:
    path = home / "inbox" / "footed" / "tmy.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(pvgis_tmy(hours=72))  # not the format matrix's file

    result = cli.invoke(app, ["ingest", str(path)])

    assert result.exit_code == 0, result.output
    assert "5 lines after the rows left out, kept as metadata" in result.stderr
    [(meta,)] = db.execute(
        "SELECT file_meta FROM sluice.files WHERE path = %s", (str(path),)
    ).fetchall()
    assert meta["footer"][-1] == "PVGIS (c) European Union, 2001-2025"
    assert ["Elevation (m)", "250.0"] in meta["fields"]


def test_a_catalog_from_before_the_column_gets_it_and_keeps_its_rows(
    database: str, db: psycopg.Connection[Any]
) -> None:
    catalog.ensure_catalog(db)
    db.execute(
        "INSERT INTO sluice.files (file_id, dataset, target, path, size, rows, rules_hash) "
        "VALUES ('old-catalog-file', 'd', 'public.d', '/x.csv', 1, 1, 'h') "
        "ON CONFLICT DO NOTHING"
    )
    # the catalog as it was before file_meta (and so before load_id, added since)
    db.execute("ALTER TABLE sluice.files DROP COLUMN file_meta, DROP COLUMN load_id")

    # a process connecting to it (ensure_ddl checks once per connection: `db` has checked)
    with psycopg.connect(database, autocommit=True) as fresh:
        catalog.ensure_catalog(fresh)

    row = db.execute(
        "SELECT rows, file_meta FROM sluice.files WHERE file_id = 'old-catalog-file'"
    ).fetchone()
    assert row == (1, None)
