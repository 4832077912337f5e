"""`sluice dlq list|show|replay|drop`: the dead letters of quarantined files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from sluice.cli.render import err, out, print_json, print_letters, print_replayed, show_letter
from sluice.cli.runs import imported, no_heartbeats, quiet_prefect_console, runs_api
from sluice.errors import SluiceError
from sluice.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis

    from sluice.state.checkpoints import Keys


@contextmanager
def dead_letters(settings: Settings) -> Iterator[tuple[redis.Redis, Keys]]:
    """Redis and the sink's keys for the dlq commands (the letters of the database the settings
    name); an unknown letter or Redis down ends the command with 1."""
    from sluice import ledger, translate
    from sluice.state import checkpoints

    keys = ledger.keys_for(settings.dsn(), settings.schema_name)
    r = checkpoints.client(settings.redis_url.get_secret_value())
    try:
        yield r, keys
    except SluiceError as exc:
        err.print(str(exc), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        if not translate.is_redis_down(exc):
            raise
        err.print(translate.one_line(exc))
        raise typer.Exit(1) from None
    finally:
        r.close()


def dlq_list(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset's letters.")] = None,
    history: Annotated[
        bool, typer.Option(help="Every letter, also older ones of a file quarantined again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, every field.")] = False,
) -> None:
    """The newest dead letter of each quarantined file, oldest first. Example: sluice dlq list"""
    from sluice.state import dlq

    with dead_letters(get_settings()) as (r, keys):
        found = dlq.letters(r, keys, dataset=dataset, history=history)
    if as_json:
        print_json([letter.as_dict() for letter in found])
        return
    print_letters(found)


def dlq_show(
    key: Annotated[str, typer.Argument(help="Letter id, or a file id (a unique prefix will do).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Everything a dead letter says. Example: sluice dlq show 3f2a9c"""
    from sluice.state import dlq

    with dead_letters(get_settings()) as (r, keys):
        letter = dlq.find(r, keys, key)
    if as_json:
        print_json(letter.as_dict())
        return
    show_letter(letter)


def dlq_replay(
    keys: Annotated[
        list[str] | None, typer.Argument(help="Letter ids or file ids (unique prefixes).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every file with a dead letter.")] = False,
    dataset: Annotated[str | None, typer.Option(help="With --all: only this dataset.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Prefect's run logs here too.")] = False,
) -> None:
    """Move quarantined files back to the inbox and ingest them again, after fixing the cause.

    Example: sluice dlq replay --all --dataset weather
    """
    if bool(keys) == all_:
        raise typer.BadParameter("give letter ids or --all (not both)")
    if dataset and not all_:
        raise typer.BadParameter("--dataset goes with --all")
    runs = runs_api(get_settings())
    quiet_prefect_console(verbose)
    from flows.replay import replay

    imported()
    runs.ready()
    with no_heartbeats():
        state = replay(ids=keys or None, all=all_, dataset=dataset, return_state=True)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, list):
        err.print(f"replay failed: {summary}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    for item in summary:
        print_replayed(item)
    if not summary:
        out.print("no dead letters to replay")
    if any(item.outcome not in ("loaded", "duplicate") for item in summary):
        raise typer.Exit(1)


def dlq_drop(
    key: Annotated[str, typer.Argument(help="Letter id, or a file id (a unique prefix will do).")],
) -> None:
    """Delete one dead letter; the quarantined file stays. Example: sluice dlq drop 3f2a9c"""
    from sluice.state import dlq

    with dead_letters(get_settings()) as (r, keys):
        letter = dlq.find(r, keys, key)
        dlq.remove(r, keys, letter.id)
    out.print(f"dropped {letter.id} ({letter.name}); the file stays at {letter.quarantined}")
