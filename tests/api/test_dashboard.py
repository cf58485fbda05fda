"""The dashboard in a real headless Chromium, against three fake nodes on 127.0.0.1.

Two ways of driving the browser, both without Python dependencies beyond aiohttp:
* `--dump-dom` with a virtual-time budget: one load, the DOM after a few polls;
* the DevTools protocol over a websocket (aiohttp's client): the page stays open while the
  fake cluster changes under it, a member dies, and then the node that served the page dies.
Skipped (with the reason) where no Chromium is installed; CI installs Debian's `chromium`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser

from aiohttp import web

from paxosd.api.http import serve_http
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, Browser, end_process, requires_chromium

from .conftest import FakeNode

pytestmark = requires_chromium


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
            {"id": i, "http": f"127.0.0.1:{port}", "resp": None, "peer": None}
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


def test_dump_dom_shows_members_and_leader() -> None:
    async def scenario() -> str:
        async with cluster() as running:
            # The alternative field shapes the page also accepts: *_slot names, list ballots.
            for node in running.nodes:
                node.status_extra = {"applied_slot": 10, "chosen_slot": 10, "ballot": [1, 1]}
            running.nodes[1].status_extra["applied_slot"] = 7
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
    assert sorted(dom.rows) == ["1", "2", "3"], dom.rows
    assert dom.by_id["leader"].strip() == "1"
    assert dom.rows["1"]["role"] == "leader"
    assert dom.rows["2"]["role"] == dom.rows["3"]["role"] == "follower"
    assert "leader" in dom.rows["1"]["leader-mark"]
    assert dom.by_id["ballot"] == "1.1"
    assert dom.rows["2"]["lag"] == "3" and dom.rows["3"]["lag"] == "0"
    assert all(dom.row_attrs[i]["data-reachable"] == "true" for i in "123")
    assert dom.by_id["origin"].startswith("served by node 1")
    assert int(dom.by_id["polls"]) >= 2


# ---------------------------------------------------------------------------------------------
# The DevTools protocol


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

                # The node that served the page dies: the page says so and keeps polling.
                await running.stop(1)
                await browser.wait_for(_attr("#origin", "state"), "down")
                assert "not answering" in await browser.evaluate(_text("#origin"))
                await browser.wait_for(_attr('tr[data-member="1"]', "reachable"), "false")
                for node in running.nodes:
                    node.ballot = "3.2"
                await browser.wait_for(_text("#ballot"), "3.2")
                assert await browser.evaluate(_text("#leader")) == "2"
            finally:
                await browser.close()

    asyncio.run(scenario())
