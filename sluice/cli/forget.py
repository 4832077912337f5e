"""`sluice forget`: make a loaded file loadable again."""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli.render import err, out
from sluice.settings import get_settings


def forget(
    file: Annotated[str, typer.Argument(help="The file's path, or its id (a unique prefix).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do it; without, say what it would do.")
    ] = False,
) -> None:
    """Make a loaded file loadable again: its rows and its ledger row go in one transaction,
    then its Redis state (status, stage results, seen-marks) and staging.

    Example: sluice forget 3f2a9c1b7e04 --yes
    """
    from sluice import catalog, ledger

    settings = get_settings()
    with catalog.connect(settings.dsn()) as conn:
        file_id = ledger.resolve(conn, file)
        found = ledger.find(conn, file_id)
    what = f"the rows in {found[2]} and the ledger row of" if found else "the Redis state of"
    if not yes:
        err.print(f"would delete {what} {file_id[:12]}; run again with --yes", highlight=False)
        raise typer.Exit(1)
    report = ledger.forget_everywhere(settings, file_id)
    done = report.forgotten
    if done is None:
        out.print(f"{file_id[:12]} was not in the ledger; removed {report.redis_keys} Redis keys")
        return
    out.print(
        f"forgot {file_id[:12]}: {done.rows:,} rows deleted from {done.target}, its ledger row "
        f"and {report.redis_keys} Redis keys; ingest it again to load it",
        highlight=False,
    )
