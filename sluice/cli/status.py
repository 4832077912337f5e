"""`sluice status` and `sluice datasets`: what landed and what waits, and the rules in force."""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.cli.render import print_json, print_rules, print_status
from sluice.settings import get_settings


def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array, one object per dataset.")
    ] = False,
) -> None:
    """Per dataset: files loaded and quarantined today, rows, last load, inbox lag, runs in
    flight, dead letters. Example: sluice status --json
    """
    from sluice import catalog, ledger
    from sluice.state import checkpoints
    from sluice.status import gather

    settings = get_settings()
    with (
        catalog.connect(settings.dsn()) as conn,
        checkpoints.client(settings.redis_url.get_secret_value()) as r,
    ):
        found = gather(conn, r, ledger.keys(conn, settings.schema_name), settings.inbox)
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    print_status(found)


def datasets(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the rules.")] = False,
) -> None:
    """The dataset rules and suites in force: each dataset datasets.yaml names or that has a
    suite by name (expectations/<dataset>.json beside it); other datasets get the defaults.
    Example: sluice datasets
    """
    from sluice.status import describe_rules, rules_in_force

    settings = get_settings()
    found = [describe_rules(r, settings.datasets.parent) for r in rules_in_force(settings.datasets)]
    if as_json:
        print_json(found)
        return
    print_rules(found, settings.datasets)
