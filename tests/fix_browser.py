"""Headless Chromium (Debian's `chromium`, `services.sh install` installs it), driven over the
DevTools protocol: a page is opened, waited for and clicked as a person would, and its rendered
text read. No browser-automation package: `websockets` comes with Prefect.

The browser runs in a session of its own with a fresh profile, and is stopped by its pid (its
process group) at the end.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1200", "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)  # fmt: skip


class Page:
    """One tab: navigate, read its text, click, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A DevTools command; its result (events in between are dropped)."""
        sent = next(self.ids)
        self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == sent:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return found.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        """What the page shows: the body's rendered text."""
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, wanted: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if wanted(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed {what}; it shows:\n{shown[:3000]}")
            time.sleep(0.25)

    def click_text(self, label: str) -> bool:
        """Click, with the mouse, the innermost visible element whose text is `label` (a tab)."""
        script = f"""(() => {{
            const hits = [...document.querySelectorAll('body *')].filter(e =>
                e.offsetParent !== null && e.textContent.trim() === {json.dumps(label)});
            const inner = hits.filter(e => !hits.some(o => o !== e && e.contains(o)));
            if (!inner.length) return null;
            inner[0].scrollIntoView({{block: 'center'}});
            const box = inner[0].getBoundingClientRect();
            return [box.x + box.width / 2, box.y + box.height / 2];
        }})()"""
        where = self.evaluate(script)
        if not where:
            return False
        x, y = where
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        return True

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while not marker.exists() or not marker.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"chromium did not start (exit status {proc.poll()})")
        time.sleep(0.1)
    return int(marker.read_text().split()[0])


@pytest.fixture
def browser() -> Iterator[Page]:
    """A page of a headless Chromium of this test's own."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("SLUICE_REQUIRE_SERVICES") == "1":
            raise AssertionError("chromium is missing: run `bash scripts/services.sh install`")
        pytest.skip("chromium is missing (Debian package chromium: scripts/services.sh install)")
    profile = Path(tempfile.mkdtemp(prefix="sluice-chromium-"))
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        port = _devtools_port(profile, proc, timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            [tab] = [t for t in json.load(r) if t["type"] == "page"]
        with connect(tab["webSocketDebuggerUrl"], max_size=None) as ws:
            yield Page(ws)
    finally:
        _stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the browser's process group (it leads it: start_new_session), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # its renderer and helper processes, should any outlive it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
