"""`sluice services install|up|down|status`: the packaged services script on SLUICE_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from sluice.settings import get_settings


def _services(command: str, names: list[str]) -> None:
    """The packaged services script on SLUICE_HOME, with the prefect of this environment."""
    from sluice import services

    code = services.run(command, names, home=get_settings().home)
    if code:
        raise typer.Exit(code)


def services_install(
    names: Annotated[list[str] | None, typer.Argument(help="redis postgres prefect")] = None,
) -> None:
    """Install (as root; otherwise say what is missing) what the services need.
    Example: sluice services install"""
    _services("install", names or ["redis", "postgres", "prefect"])


def services_up(
    names: Annotated[list[str] | None, typer.Argument(help="redis postgres prefect")] = None,
) -> None:
    """Install if needed and start the local services. Example: sluice services up"""
    _services("up", names or [])


def services_down(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Stop the local services started on this SLUICE_HOME. Example: sluice services down"""
    _services("down", names or [])


def services_status(names: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Say which local services run, and where the Prefect UI is. Example: sluice services status"""
    _services("status", names or [])
