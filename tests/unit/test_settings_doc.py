"""The configuration reference (docs/configuration.md, linked from the README) is the one
scripts/settings_doc.py generates from the Settings class: a new setting without its line fails
here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sluice.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _settings_doc() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "settings_doc", REPO / "scripts" / "settings_doc.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_table_is_the_generated_one() -> None:
    doc = _settings_doc()
    page = (REPO / "docs" / "configuration.md").read_text()

    assert doc.page_table(page) == doc.table(), (
        "docs/configuration.md's table is stale: run `python scripts/settings_doc.py --write`"
    )


def test_every_setting_has_a_row_with_its_variable_and_description() -> None:
    table = _settings_doc().table()

    for name, field in Settings.model_fields.items():
        variable = field.validation_alias or f"SLUICE_{name.upper()}"
        [row] = [line for line in table.splitlines() if line.startswith(f"| `{variable}` |")]
        assert field.description and field.description.split(".")[0] in row
