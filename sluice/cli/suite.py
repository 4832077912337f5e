"""`sluice suite init`: a starting Great Expectations suite from a typical file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.render import err, out
from sluice.settings import get_settings


def suite_init(
    dataset: Annotated[str, typer.Argument(help="Dataset the suite is for.")],
    path: Annotated[Path, typer.Argument(help="A typical file of the dataset.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write; default: expectations/<dataset>.json beside datasets.yaml, "
            "where it applies to the dataset by its name.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing suite file.")] = False,
) -> None:
    """Write a GX 1.x suite of what FILE holds, for a person to edit, as expectations/<dataset>.json
    beside datasets.yaml: it applies by its name. Reads the file only: no services needed.

    Example: sluice suite init weather data/2024-03-01.csv
    """
    from sluice import read
    from sluice.contracts import FileRef
    from sluice.datasets import load_rules
    from sluice.names import safe_identifier
    from sluice.profile import profile_file
    from sluice.validate import suites

    settings = get_settings()
    name = safe_identifier(dataset, fallback="dataset")
    target = output or settings.datasets.parent / "expectations" / f"{name}.json"
    if target.exists() and not force:
        err.print(f"{target} exists; --force overwrites it", highlight=False)
        raise typer.Exit(1)
    rules = load_rules(settings.datasets, name)
    file_id, size = read.fingerprint(path)
    ref = FileRef(str(path), file_id, name, size, rules.digest())
    inferred, profiled = profile_file(ref, rules, settings.staging, settings.batch_rows)
    suite = suites.suite_from_profile(
        name, profiled, source=path.name, time_column=inferred.time_column
    )
    suites.write_suite(target, suite)
    out.print(f"{target}: {len(suite['expectations'])} expectations from {profiled.rows:,} rows")
    err.print(_suite_applies(target, name, settings.datasets), highlight=False, soft_wrap=True)


def _suite_applies(target: Path, name: str, rules_file: Path) -> str:
    """Whether the suite just written runs: by its name, or once a rule names it."""
    from sluice.datasets import load_rules

    in_force = load_rules(rules_file, name).suite
    where = _relative(target, rules_file.parent)
    if in_force == str(target.resolve()):
        return f"it applies to dataset {name} from its next file (see `sluice datasets`)"
    instead = (
        f"dataset {name} runs {_relative(Path(in_force), rules_file.parent)}"
        if in_force
        else f"dataset {name} runs no suite of its own"
    )
    return f"note: {instead}; set `suite: {where}` under {name} in {rules_file} to run this one"


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
