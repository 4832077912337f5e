"""`sluice --help` and every command's help: one line that says what it does, with an example,
and fast (Prefect and the flows are imported only by the commands that run them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sluice.cli import app
from sluice.errors import UnreadableFile
from sluice.settings import get_settings
from sluice.translate import one_line


def _commands() -> list[tuple[str, Any]]:
    """(`sluice dlq list`, command) for every command, groups' commands included."""
    found = []

    def walk(prefix: str, command: Any) -> None:
        found.append((prefix, command))
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}", sub)

    walk("sluice", typer.main.get_command(app))
    return found


@pytest.mark.parametrize("name, command", _commands(), ids=lambda c: str(c).replace(" ", "-"))
def test_every_command_says_what_it_does_with_an_example(name: str, command: Any) -> None:
    text = command.help or ""
    assert text.strip(), f"{name} has no help"
    assert "Example: sluice" in text, f"{name}: no example in {text!r}"
    assert len(text.split("Example:")[0].strip().splitlines()) <= 2, f"{name}: not one line"


def test_the_new_commands_are_there() -> None:
    names = {name for name, _ in _commands()}

    assert {"sluice status", "sluice datasets", "sluice ingest", "sluice dlq replay"} <= names


def test_help_imports_neither_prefect_nor_great_expectations() -> None:
    """What made `sluice --help` slow was importing them (seconds); its time is not asserted
    here (no timed assertions: a loaded CI machine is slow at everything)."""
    code = (
        "import sys; from sluice.cli import main; sys.argv = ['sluice', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('prefect' in sys.modules, 'great_expectations' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    prefect, gx = done.stderr.split()[-2:]
    assert "ingest" in done.stdout
    assert (prefect, gx) == ("False", "False")


def test_an_error_is_one_line_and_exit_one_the_traceback_only_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "datasets.yaml"
    bad.write_text("- not\n- a mapping\n")
    monkeypatch.setattr(get_settings(), "datasets", bad)
    runner = CliRunner()

    plain = runner.invoke(app, ["datasets"])
    debug = runner.invoke(app, ["--debug", "datasets"])

    assert plain.exit_code == 1
    assert plain.stderr == f"error: {bad}: expected a mapping of dataset name to rules\n"
    assert "Traceback" not in plain.output
    assert debug.exit_code == 1
    assert isinstance(debug.exception, ValueError)


def test_one_line_says_what_where_and_what_to_do() -> None:
    error = UnreadableFile("no such file", file="x.csv", stage="fingerprint", hint="check the path")

    line = one_line(error)

    assert "\n" not in line
    assert "x.csv" in line and "no such file" in line and "check the path" in line
