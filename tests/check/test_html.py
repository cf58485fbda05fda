"""``paxosd check --html``: the page, drawn by a real headless Chromium.

The history is one the simulator wrote with a planted bug (a leader answering reads it
should have confirmed): key k2 is not linearizable. Chromium loads the page from disk with
no network; the DOM it dumps must show the failing key drawn, its prefix numbered and the
operation that cannot be placed marked. A screenshot is taken too; with
``PAXOSD_SCREENSHOTS=docs/images`` it is kept as docs/images/checker-page.png.

Skipped (with the reason) where no Chromium is installed; CI installs Debian's `chromium`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from paxosd.cli.check import command

from ..api.test_dashboard import CHROMIUM, CHROMIUM_FLAGS  # the suite's one way to run it
from ._support import REPO_ROOT

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)"
)
PAGE_FLAGS = ("--hide-scrollbars", "--window-size=1400,1000")
HISTORY = REPO_ROOT / "tests" / "data" / "histories" / "sim-c10-unconfirmed-reads-s6.jsonl.gz"
browser_timeout_s = 60.0


def chromium(*args: str) -> bytes:
    """Run Chromium once, in its own process group, and stop the whole group after."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, *PAGE_FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=browser_timeout_s)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return out


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.classes: list[set[str]] = []
        self.body: dict[str, str | None] = {}
        self.svg_keys: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self.body = attributes
        if tag == "svg" and "data-key" in attributes:
            self.svg_keys.append(attributes["data-key"])
        if tag == "g":
            self.classes.append(set((attributes.get("class") or "").split()))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "page.html"
    here = Path.cwd()
    os.chdir(REPO_ROOT)  # the page's title is the path as given: keep it short
    try:
        relative = HISTORY.relative_to(REPO_ROOT)
        result = CliRunner().invoke(command, [str(relative), "--html", str(path)])
    finally:
        os.chdir(here)
    assert result.exit_code == 1, result.output
    return path


def test_the_page_draws_the_failing_key(page: Path) -> None:
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", page.as_uri()).decode()
    parsed = _Page()
    parsed.feed(dom)
    assert parsed.body.get("data-rendered") == "true"  # the script ran to the end
    assert parsed.svg_keys == ["k2"]  # failing keys first
    ops = [c for c in parsed.classes if "op" in c]
    assert len(ops) == 104  # every operation of the key, one bar each
    assert sum("stuck" in c for c in ops) == 1
    assert sum("prefix" in c for c in ops) == 13  # the longest prefix found
    assert any("unknown" in c for c in ops)
    assert "can never take effect" in dom


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "checker-page.png"
    chromium(f"--screenshot={shot}", "--virtual-time-budget=3000", page.as_uri())
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a page, not a blank
    keep = os.environ.get("PAXOSD_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
