"""The Prefect UI of the local services, as a person sees it in a browser: the server that
`services.sh up` starts (tests/fix_stack.py, without PREFECT_API_URL, as from a shell) serves a
UI that calls that same server's API, so a file's run and its artifacts show.

Headless Chromium opens the runs page and the run's page of both UIs Prefect 3.8 serves (the
classic one at `/`, the README's link, and the new one at `/v2`, a fresh browser's default) and
reads the rendered text; a screenshot of each page is kept in the test's folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.data import weather_csv
from tests.fix_browser import Page
from tests.fix_stack import SLUICE, Stack

pytestmark = [pytest.mark.services, pytest.mark.ui, pytest.mark.timeout(600)]

DATASET = "ui_check"
BROKEN = ("Can't connect to Server API", "Oops. Something went wrong")


def _shown(page: Page, url: str, wanted: list[str], shot: Path, tab: str = "") -> str:
    """Open `url` (then click its `tab`) until every `wanted` text shows; the page's text."""
    page.open(url)
    try:
        if tab:
            page.wait_for_text(lambda text: tab in text, 60, f"a {tab} tab")
            assert page.click_text(tab), f"{url}: no {tab} tab to click"

        def showing(text: str) -> bool:
            if all(w in text for w in wanted):
                return True
            if tab:  # a click before the page answers to it is lost: click again, as a person would
                page.click_text(tab)
            return False

        shown = page.wait_for_text(showing, 60, str(wanted))
    finally:
        page.screenshot(shot)
    assert not [b for b in BROKEN if b in shown], f"{url}: {shown[:2000]}"
    return shown


def test_both_uis_show_a_files_run_and_its_artifacts(
    stack: Stack, browser: Page, tmp_path: Path
) -> None:
    run = stack.ingest(weather_csv(stack.inbox(DATASET) / "readings.csv", rows=50))
    assert run.outcomes() == ["loaded"], run.stderr
    name = f"ingest-file/{DATASET}/readings.csv"
    [flow_run] = stack.flow_runs(name)
    of_run = {"artifacts": {"flow_run_id": {"any_": [flow_run["id"]]}}}
    found = stack.api("artifacts/filter", of_run)
    artifacts = sorted(a["key"] for a in found if a["key"])
    assert artifacts == [f"summary-{DATASET.replace('_', '-')}"], artifacts  # one per file
    [summary] = [a for a in found if a["key"]]

    ui = stack.env["PREFECT_API_URL"].removesuffix("/api")
    for base in (ui, f"{ui}/v2"):
        version = "v2" if base.endswith("/v2") else "v1"
        _shown(browser, f"{base}/runs", [name], tmp_path / f"runs-{version}.png")
        page = f"{base}/runs/flow-run/{flow_run['id']}"
        _shown(browser, page, [name, *artifacts], tmp_path / f"run-{version}.png", "Artifacts")
    # the summary holds what the profile and validation artifacts showed before
    _shown(
        browser,
        f"{ui}/artifacts/artifact/{summary['id']}",
        ["readings.csv: loaded", "profile", "validation", "expect_column_values_to_not_be_null"],
        tmp_path / "summary.png",
    )


def test_services_status_says_where_the_ui_is(stack: Stack) -> None:
    status = subprocess.run(
        [SLUICE, "services", "status", "prefect"],
        env={k: v for k, v in stack.env.items() if k != "PREFECT_API_URL"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert f"UI http://127.0.0.1:{stack.ports['prefect']}" in status.stdout, status.stdout
