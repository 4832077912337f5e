"""README.md and docs/: the README stays short and links every page of docs/; every relative
link of either leads to a file of the repository (no page orphaned, no file cited that is not
here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(page.read_text()) if "://" not in m.group(1)]


def test_the_readme_is_read_in_five_minutes() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_the_readme_links_every_docs_page() -> None:
    linked = {(REPO / link).resolve() for link in _links(README)}

    assert [p.name for p in PAGES if p.resolve() not in linked] == []


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    missing = [link for link in _links(page) if not (page.parent / link).exists()]

    assert missing == [], f"{page.name} links {missing}, which are not in the repository"
