"""The `sluice` command's frame: the Typer apps of the command and its groups, and errors as one
line on stderr with exit status 1 (`sluice --debug ...` shows the traceback instead)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from sluice.cli.render import err


@dataclass
class Process:
    """What this process is, set by the command's options and `main`."""

    debug: bool = False  # --debug: tracebacks instead of one-line errors
    command: bool = False  # the `sluice` command (main), not a caller of its functions


PROCESS = Process()


def _friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; an unexpected error is one line on stderr and exit 1 (unless --debug)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise
        except Exception as exc:
            if PROCESS.debug:
                raise
            from sluice.translate import one_line  # psycopg and redis: not for --help

            err.print(f"error: {one_line(exc)}", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(1) from None

    return run


class _Typer(typer.Typer):
    """typer.Typer whose commands end in one line on error (see `_friendly`)."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(*args, **kwargs)

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register(_friendly(fn))
            return fn

        return decorator


app = _Typer(
    help="Sluice: files in an inbox become rows in TimescaleDB hypertables.\n\n"
    "Example: sluice ingest data/weather.csv --dataset weather",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


services_app = _Typer(
    help="Start, stop and check the local Redis, PostgreSQL and Prefect. "
    "Example: sluice services up",
    no_args_is_help=True,
)


dlq_app = _Typer(
    help="Dead letters: list, show and replay files that were quarantined. "
    "Example: sluice dlq list",
    no_args_is_help=True,
)


suite_app = _Typer(
    help="Great Expectations suites of datasets: write a starting suite from a file. "
    "Example: sluice suite init weather data/2024-03-01.csv",
    no_args_is_help=True,
)


app.add_typer(services_app, name="services")
app.add_typer(dlq_app, name="dlq")
app.add_typer(suite_app, name="suite")


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    PROCESS.debug = debug
