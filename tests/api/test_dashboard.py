"""The dashboard in a real headless Chromium, against three fake nodes on 127.0.0.1.

Two ways of driving the browser, both without Python dependencies beyond aiohttp:
* `--dump-dom` with a virtual-time budget: one load, the DOM after a few polls;
* the DevTools protocol over a websocket (aiohttp's client): the page stays open while the
  fake cluster changes under it, a member dies, and then the node that served the page dies.
Skipped (with the reason) where no Chromium is installed; CI installs Debian's `chromium`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiohttp import web

from paxosd.api.http import serve_http
from paxosd.api.version import VERSION
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, Browser, end_process, requires_chromium

from .conftest import FakeNode

pytestmark = requires_chromium

# Limits, units last.
dom_timeout_s = 20.0
poll_interval_s = 0.1


class Cluster:
    """Three FakeNodes, each serving the real app on an ephemeral 127.0.0.1 port."""

    def __init__(self) -> None:
        self.nodes = [FakeNode(node_id) for node_id in (1, 2, 3)]
        self.runners: dict[int, web.AppRunner] = {}

    async def start(self) -> None:
        ports = {}
        for node in self.nodes:
            runner = await serve_http(node, "127.0.0.1", 0)
            self.runners[node.node_id] = runner
            ports[node.node_id] = runner.addresses[0][1]
        members = [
            {
                "id": i,
                "http": f"127.0.0.1:{port}",
                "resp": f"127.0.0.1:{6400 + i}",
                "peer": None,
                "connected": True,
            }
            for i, port in ports.items()
        ]
        for node in self.nodes:
            node.member_list = members
            node.leader = 1
            node.ballot = "1.1"
        self.ports = ports

    def url(self, node_id: int) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}/"

    async def stop(self, node_id: int) -> None:
        runner = self.runners.pop(node_id, None)
        if runner is not None:
            await runner.cleanup()

    async def close(self) -> None:
        for node_id in list(self.runners):
            await self.stop(node_id)


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    running = Cluster()
    try:
        await running.start()
        yield running
    finally:
        await running.close()


# ---------------------------------------------------------------------------------------------
# --dump-dom


class _Dom(HTMLParser):
    """Just enough of the DOM: text by element id, and member rows' cells by class."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}
        self.row_attrs: dict[str, dict[str, str | None]] = {}
        self._open: list[tuple[str, str | None, str | None]] = []  # (tag, id, class)
        self._row: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-member") is not None:
            self._row = found["data-member"]
            assert self._row is not None
            self.rows[self._row] = {}
            self.row_attrs[self._row] = found
        self._open.append((tag, found.get("id"), found.get("class")))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, _, _ = self._open.pop()
            if open_tag == tag:
                break
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        for _, element_id, _ in self._open:
            if element_id:
                self.by_id[element_id] = self.by_id.get(element_id, "") + data
        if self._row is not None and self._open and self._open[-1][0] == "td":
            for name in (self._open[-1][2] or "").split():
                cells = self.rows[self._row]
                cells[name] = cells.get(name, "") + data


def _dump_dom(setup: Callable[[Cluster], None]) -> _Dom:
    """The DOM after a few polls of node 1's page, the fake cluster set up by `setup`."""

    async def scenario() -> str:
        async with cluster() as running:
            setup(running)
            with tempfile.TemporaryDirectory() as profile:
                assert CHROMIUM is not None
                process = await asyncio.create_subprocess_exec(
                    CHROMIUM,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    running.url(1),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    out, _ = await asyncio.wait_for(process.communicate(), 60)
                finally:
                    await end_process(process)
        return out.decode()

    dom = _Dom()
    dom.feed(asyncio.run(scenario()))
    return dom


def test_dump_dom_shows_members_and_leader() -> None:
    def setup(running: Cluster) -> None:
        # The alternative field shapes the page also accepts: *_slot names, list ballots.
        for node in running.nodes:
            node.status_extra = {"applied_slot": 10, "chosen_slot": 10, "ballot": [1, 1]}
        running.nodes[1].status_extra["applied_slot"] = 7

    dom = _dump_dom(setup)
    assert sorted(dom.rows) == ["1", "2", "3"], dom.rows
    assert dom.by_id["leader"].strip() == "1"
    assert dom.rows["1"]["role"] == "leader"
    assert dom.rows["2"]["role"] == dom.rows["3"]["role"] == "follower"
    assert "leader-mark" not in dom.rows["1"]  # the role column says it once
    assert dom.by_id["ballot"] == "1.1"
    assert dom.by_id["members-up"] == "3 of 3 up"
    assert dom.by_id["quorum"].startswith("quorum OK: 2 of 3 needed, 1 more may fail")
    assert dom.rows["2"]["address"].startswith("127.0.0.1:")
    assert dom.rows["1"]["uptime"] == "1 h 2 min" and dom.rows["1"]["disk"] == "5.3 MiB"
    assert dom.by_id["version"] == VERSION  # no status carries one: the page's own
    assert dom.by_id["leader-address"] == dom.rows["1"]["address"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", dom.by_id["updated"])
    assert dom.rows["2"]["lag"] == "3" and dom.rows["3"]["lag"] == "0"
    assert all(dom.row_attrs[i]["data-reachable"] == "true" for i in "123")
    assert dom.by_id["origin"].startswith("served by node 1")
    assert int(dom.by_id["polls"]) >= 2


def test_dump_dom_shows_a_learner_catching_up_and_a_removed_node() -> None:
    def setup(running: Cluster) -> None:
        for node in running.nodes:
            node.status_extra = {
                "applied": 10,
                "commit": 10,
                "configuration": {"epoch": 3, "voters": [1, 2], "learners": [3]},
            }
        running.nodes[2].status_extra["applied"] = 4
        running.nodes[0].member_list = [*running.nodes[0].member_list, {"id": 4, "http": None}]

    dom = _dump_dom(setup)
    assert dom.rows["3"]["role"] == "learner 40%", dom.rows["3"]
    assert dom.rows["4"]["role"] == "removed"
    assert dom.rows["1"]["role"] == "leader" and dom.rows["2"]["role"] == "follower"
    # Quorums are majorities of the voters (1 and 2), not of every row.
    assert dom.by_id["members-up"] == "2 of 2 up"
    assert dom.by_id["quorum"].startswith("quorum OK: 2 of 2 needed, one more failure stops it")


def test_dump_dom_lists_the_sql_tables() -> None:
    async def scenario() -> str:
        async with cluster() as running:
            for node in running.nodes:
                node.status_extra = {
                    "sql": {
                        "revision": 3,
                        "sqlite_version": "3.40.1",
                        "bytes": 12288,
                        "tables": [{"name": "signups", "rows": 1}, {"name": "big", "rows": 1000000,
                                                                     "rows_more": True}],
                        "tables_more": False,
                    }
                }  # fmt: skip
            with tempfile.TemporaryDirectory() as profile:
                assert CHROMIUM is not None
                process = await asyncio.create_subprocess_exec(
                    CHROMIUM,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    running.url(1),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    out, _ = await asyncio.wait_for(process.communicate(), 60)
                finally:
                    await end_process(process)
        return out.decode()

    text = asyncio.run(scenario())
    dom = _Dom()
    dom.feed(text)
    tables = dom.by_id["sql-tables"]
    assert "signups" in tables and "1000000+" in tables, tables
    assert dom.by_id["sql-summary"] == "revision 3 · 12 KiB · SQLite 3.40.1"
    assert '<section class="wide" id="sql-section">' in text  # shown: it has tables


def _text(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent"


def _attr(selector: str, name: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{dataset: {{}}}}).dataset.{name}"


def test_live_dashboard_follows_the_cluster_and_outlives_its_node() -> None:
    async def scenario() -> None:
        async with cluster() as running:
            browser = Browser()
            try:
                await browser.start()
                await browser.send("Page.navigate", url=running.url(1))
                await browser.wait_for("document.querySelectorAll('tr[data-member]').length", 3)
                await browser.wait_for(_text("#leader"), "1")
                events = await browser.evaluate(_text("#events li"))
                assert "started" in events and "pid=1" in events
                await browser.wait_for(_text('tr[data-member="1"] .role'), "leader")
                await browser.wait_for(_text("#ballot"), "1.1")

                # A new leader is elected and node 3 falls behind.
                _, two, three = running.nodes
                for node in running.nodes:
                    node.leader = 2
                    node.ballot = "2.2"
                    node.status_extra = {"applied": 50, "commit": 50}
                three.status_extra = {"applied": 40, "commit": 50}
                two.status_extra["leader_changes"] = [
                    {"at": "2024-01-01T00:00:00Z", "leader": 1, "ballot": "1.1"},
                    {"at": "2024-01-01T00:01:00Z", "leader": 2, "ballot": "2.2"},
                ]
                await browser.wait_for(_text("#leader"), "2")
                await browser.wait_for(_text("#ballot"), "2.2")
                await browser.wait_for(_text('tr[data-member="2"] .role'), "leader")
                await browser.wait_for(_text('tr[data-member="1"] .role'), "follower")
                await browser.wait_for(_text('tr[data-member="3"] .lag'), "10")
                await browser.wait_for(_text('tr[data-member="3"] .chosen'), "50")
                await browser.wait_for("document.querySelectorAll('#leader-changes li').length", 2)
                # The cluster's p99 is its worst member's, not the leader's alone.
                running.nodes[0].status_extra["latency_ms"] = {"p50": 3.0, "p99": 40.0}
                two.status_extra["latency_ms"] = {"p50": 1.0, "p99": 4.0}
                await browser.wait_for(_text("#latency-p99"), "40.00")
                assert await browser.evaluate(_text("#latency-source")) == "worst member: node 1"
                # Throughput comes from successive ops_total counters.
                two.ops_total += 1000
                await browser.wait_for(
                    "Number(document.querySelector('#throughput').textContent) > 0", True
                )

                # A member dies: its row says so, the rest goes on.
                await running.stop(3)
                await browser.wait_for(_attr('tr[data-member="3"]', "reachable"), "false")
                await browser.wait_for(_text('tr[data-member="3"] .role'), "unreachable")
                alive = await browser.evaluate(_attr('tr[data-member="2"]', "reachable"))
                assert alive == "true"
                await browser.wait_for(_text("#members-up"), "2 of 3 up")
                assert await browser.evaluate(_attr("#quorum", "state")) == "ok"
                # The leader's own view of its links shows a partition the page cannot see.
                two.member_list = [dict(m, connected=m["id"] != 1) for m in two.member_list]
                await browser.wait_for(
                    _text('tr[data-member="1"] .reach'), "up, not connected to the leader"
                )

                # The node that served the page dies: the page says so and keeps polling.
                await running.stop(1)
                await browser.wait_for(_attr("#origin", "state"), "down")
                assert "not answering" in await browser.evaluate(_text("#origin"))
                await browser.wait_for(_attr('tr[data-member="1"]', "reachable"), "false")
                await browser.wait_for(_text("#members-up"), "1 of 3 up")
                await browser.wait_for(_attr("#quorum", "state"), "lost")
                for node in running.nodes:
                    node.ballot = "3.2"
                await browser.wait_for(_text("#ballot"), "3.2")
                assert await browser.evaluate(_text("#leader")) == "2"
            finally:
                await browser.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Screenshots: the layout at 1400 px and at 420 px, and with a node down


class BusyNode(FakeNode):
    """A FakeNode whose clients keep it busy: every status shows more operations done."""

    def __init__(self, node_id: int) -> None:
        super().__init__(node_id)
        self._rng = random.Random(node_id)
        self._polled = 0

    def status(self) -> dict[str, Any]:
        self.ops_total += self._rng.randrange(800, 1200) * (2 if self.node_id == 1 else 1)
        self._polled += 1  # every member is polled once per poll: the slots agree
        slot = 4000 + 37 * self._polled - (2 if self.node_id == 3 else 0)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.status_extra["commit"] = self.status_extra["applied"] = slot
        self.status_extra["leader_changes"] = [{"at": now, "leader": 1, "ballot": "1.1"}]
        self.status_extra["recent_events"] = [{"at": now, "event": "started", "pid": 4242}]
        self.status_extra["latency_ms"] = {
            "p50": round(self._rng.uniform(0.8, 1.2) * self.node_id, 2),
            "p99": round(self._rng.uniform(3.0, 5.0) * self.node_id, 2),
        }
        return super().status()


# Set to write the screenshots into docs/images (the ones the docs show), else a temp dir.
SCREENSHOTS_VARIABLE = "PAXOSD_REWRITE_SCREENSHOTS"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


async def _screenshot(browser: Browser, width: int, path: Path) -> None:
    height = await browser.evaluate("document.documentElement.scrollHeight")
    await browser.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=int(height),
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = await browser.send("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(shot["data"]))


async def _advance(browser: Browser, budget_ms: int) -> None:
    """Let the page's virtual clock run `budget_ms` further (fast while fetches complete)."""
    await browser.send(
        "Emulation.setVirtualTimePolicy", policy="pauseIfNetworkFetchesPending", budget=budget_ms
    )


async def _at_width(browser: Browser, width: int, *, settle: bool = True) -> None:
    """Resize the page to `width` px; with `settle`, wait for a poll rendered at that width."""
    await browser.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=width < 700,
    )
    if not settle:
        return
    await browser.wait_for("document.documentElement.clientWidth", width)
    await _polls(browser, 2)


async def _polls(browser: Browser, more: int) -> None:
    """Run the page's virtual clock until it has polled `more` more times."""
    await browser.wait_for("document.querySelector('#polls') !== null", True)
    count = "Number(document.querySelector('#polls').textContent)"
    target = await browser.evaluate(count) + more
    deadline = time.monotonic() + dom_timeout_s
    while (done := await browser.evaluate(count)) < target:
        assert time.monotonic() < deadline, f"the page polled fewer than {more} more times"
        await _advance(browser, 1_000 * min(10, target - done))
        await asyncio.sleep(poll_interval_s)


def test_screenshots_at_1400_and_420_px_and_with_a_node_down(tmp_path: Path) -> None:
    out = DOCS_IMAGES if os.environ.get(SCREENSHOTS_VARIABLE) == "1" else tmp_path

    async def scenario() -> None:
        running = Cluster()
        running.nodes = [BusyNode(node_id) for node_id in (1, 2, 3)]
        await running.start()
        browser = Browser()
        try:
            await browser.start()
            await _at_width(browser, 1400, settle=False)
            await browser.send("Page.navigate", url=running.url(1))
            # Fill the chart: virtual time runs the page's timers fast while fetches complete.
            await _polls(browser, 40)
            await browser.wait_for(_attr("#quorum", "state"), "ok")

            # 1400 px: the four figures share one row, and the chart has its scales.
            await _at_width(browser, 1400)
            tops = await browser.evaluate(
                "[...document.querySelectorAll('section.card')]"
                ".map(s => Math.round(s.getBoundingClientRect().top))"
            )
            assert len(tops) == 4 and len(set(tops)) == 1, tops
            labels = await browser.evaluate(
                "[...document.querySelectorAll('#chart .axis')].map(t => t.textContent)"
            )
            assert "now" in labels and "−60 s" in labels, labels
            assert len(labels) >= 15  # five ticks on each of three axes
            assert (
                await browser.evaluate(
                    "document.querySelector('#chart-ops').getAttribute('points').split(' ').length"
                )
                >= 30
            )
            await _screenshot(browser, 1400, out / "dashboard-1400.png")

            # 420 px: nothing sticks out sideways; the members become labelled blocks.
            await _at_width(browser, 420)
            overflow = await browser.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 420, f"the page is {overflow} px wide at 420 px"
            label = await browser.evaluate(
                "getComputedStyle(document.querySelector('td.uptime'), '::before').content"
            )
            assert label == '"uptime"'
            await _screenshot(browser, 420, out / "dashboard-420.png")

            # A follower down: the page says which, and that the quorum holds.
            await running.stop(3)
            await _at_width(browser, 1400)
            await _polls(browser, 2)
            await browser.wait_for(_text("#members-up"), "2 of 3 up")
            await browser.wait_for(_text('tr[data-member="3"] .role'), "unreachable")
            await _screenshot(browser, 1400, out / "dashboard-node-down.png")
        finally:
            await browser.close()
            await running.close()

    asyncio.run(scenario())
    for name in ("dashboard-1400.png", "dashboard-420.png", "dashboard-node-down.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
