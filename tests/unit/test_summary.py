"""sluice.summary: a file's run as the markdown of its summary artifact."""

from __future__ import annotations

from sluice.contracts import FileRef, LoadReport
from sluice.summary import summary, tables_markdown

REF = FileRef("/inbox/weather/a.csv", "ab" * 32, "weather", 2048, "rules")


def test_a_loaded_file_shows_its_table_changes_and_the_seconds_per_stage() -> None:
    load = LoadReport("public.weather", 10, "loaded", chunks=2, created=True, added_columns=("x",))

    text = summary(REF, "loaded", 10, 1.5, load, {"read": 0.25, "load": 1.0})

    assert text.startswith("### a.csv: loaded\n")
    assert "| table | public.weather (created) |" in text
    assert "| schema changes | added x |" in text
    assert "| read | 0.250 |" in text and "| load | 1.000 |" in text


def test_a_failed_file_shows_its_error_with_table_bars_escaped() -> None:
    text = summary(REF, "quarantined", 0, 0.2, None, {}, "bad | value")

    assert "| error | bad / value |" in text
    assert "| (all cached or skipped) | |" in text
    assert "| table |" not in text


def test_the_stages_tables_follow_with_their_cells_on_one_line() -> None:
    text = tables_markdown({"profile": ("3 columns", [{"column": "t", "note": "a\nb|c"}])})

    assert "#### profile" in text
    assert "| column | note |" in text
    assert "| t | a b/c |" in text
    assert tables_markdown({}) == ""
