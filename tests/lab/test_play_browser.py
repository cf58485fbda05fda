"""`paxosd lab play` in a real headless Chromium: the page drives the real cores.

One server and one browser for the whole module (starting Chromium is the slow part). The
page is driven the way a learner drives it, by clicking its buttons; what it shows is read
back from the DOM. Screenshots of each tour's end go to $PAXOSD_LAB_SCREENSHOTS when set
(docs/lab.md says how its pictures were made), else to a temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from paxosd.lab.algorithms import get
from paxosd.lab.check import CheckRequest, run_check
from paxosd.lab.play import tours
from paxosd.lab.play.server import Lab, serve
from tests.browser import Browser, requires_chromium

pytestmark = requires_chromium

# Limits, units last. Generous: the machine may be shared, and the coach explores thousands
# of states in a worker thread.
step_timeout_s = 60.0
poll_interval_s = 0.1


async def until(browser: Browser, expression: str, expected: Any = True) -> Any:
    deadline = time.monotonic() + step_timeout_s
    value = None
    while time.monotonic() < deadline:
        value = await browser.evaluate(expression)
        if value == expected:
            return value
        await asyncio.sleep(poll_interval_s)
    raise AssertionError(f"{expression} is {value!r}, expected {expected!r}")


def js(selector: str, tail: str = "textContent") -> str:
    found = f"document.querySelector({json.dumps(selector)})"
    return f"(function () {{ var e = {found}; return e ? e.{tail} : null; }})()"


STEP = "(document.body ? document.body.dataset.step : null)"  # null while still loading


async def step_is(browser: Browser, step: int) -> None:
    await until(browser, STEP, str(step))


async def open_page(browser: Browser, url: str) -> None:
    await browser.send("Page.navigate", url=url)
    await until(browser, "document.querySelectorAll('#nodes .node').length > 0")


async def deliver(browser: Browser, src: int, dst: int, msg: str) -> None:
    """Click "deliver" on the message in flight from src to dst with this text."""
    clicked = await browser.evaluate(
        "(function () { var items = document.querySelectorAll('#messages li[data-message]');"
        " for (var i = 0; i < items.length; i++) { var li = items[i];"
        f" if (li.textContent.indexOf({json.dumps(f'{src} → {dst}')}) >= 0 &&"
        f" li.querySelector('.msg').textContent === {json.dumps(msg)}) {{"
        " li.querySelector('button[data-action^=\"deliver:\"]').click(); return true; } }"
        " return false; })()"
    )
    assert clicked, f"no deliverable {msg} from {src} to {dst} on the page"


def node_value(node: int, key: str) -> str:
    return js(f'#node-{node} .row[data-key="{key}"] .v')


def with_lab(body: Callable[[Browser, str], Awaitable[None]], lab: Lab | None = None) -> None:
    async def scenario() -> None:
        runner = await serve(lab or Lab(), "127.0.0.1", 0)
        browser = Browser()
        try:
            await browser.start()
            await browser.size(1400, 1000)
            await body(browser, f"http://127.0.0.1:{runner.addresses[0][1]}/")
        finally:
            await browser.close()
            await runner.cleanup()

    asyncio.run(scenario())


def test_deliver_crash_step_back_fork_and_a_second_tab() -> None:
    async def body(browser: Browser, base: str) -> None:
        await open_page(browser, base + "?algorithm=paxos")
        assert await browser.evaluate(node_value(2, "promised")) == "-"
        await browser.click('button[data-action="propose:1:red"]')
        await step_is(browser, 1)
        await deliver(browser, 1, 2, "Prepare(1.1)")
        await step_is(browser, 2)
        assert await browser.evaluate(node_value(2, "promised")) == "1.1"
        before = await browser.evaluate(js("#nodes", "innerText"))
        diagram_before = await browser.evaluate(js("#diagram", "innerHTML"))

        await browser.click('button[data-action="crash:3"]')
        await step_is(browser, 3)
        assert await browser.evaluate(js("#node-3", "dataset.up")) == "false"

        await browser.click("#back")
        await step_is(browser, 2)
        assert await browser.evaluate(js("#nodes", "innerText")) == before
        assert await browser.evaluate(js("#diagram", "innerHTML")) == diagram_before
        assert await browser.evaluate(js("#node-3", "dataset.up")) == "true"

        await browser.click("#fork")
        await until(browser, "document.querySelectorAll('#branches option').length", 2)
        await browser.click('button[data-action="timeout:1"]')
        await step_is(browser, 3)
        assert await browser.evaluate(js("#node-3", "dataset.up")) == "true", "a new branch"
        await browser.evaluate("document.getElementById('branches').value = '0';"
                               "document.getElementById('branches').onchange()")  # fmt: skip
        await until(browser, js("#node-3", "dataset.up"), "false")  # the old branch, kept

        # A second tab acts on the same session: this page follows it.
        sid = await browser.evaluate("document.body.dataset.session")
        version = int(await browser.evaluate("document.body.dataset.version"))
        async with aiohttp.ClientSession() as other:
            answer = await other.post(
                f"{base}api/sessions/{sid}/goto", json={"step": 1, "version": version}
            )
            assert answer.status == 200
        await step_is(browser, 1)
        assert await browser.evaluate(node_value(2, "promised")) == "-"

    with_lab(body)


def test_the_coach_gives_lab_checks_shortest_counterexample() -> None:
    cli = run_check(CheckRequest(get("majority"), explore=True, rounds=2))
    expected = [step["text"] for step in cli.counterexamples["termination"]["trace"]]

    async def body(browser: Browser, base: str) -> None:
        await open_page(browser, base + "?algorithm=majority")
        await browser.click("#coach-button")
        await until(browser, "!!document.querySelector('#coach-outlook')")
        assert await browser.evaluate(js("#coach-outlook", "dataset.outlook")) == "bivalent"
        shown = await browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll("
            "'.coach-path[data-property=\"termination\"] li'), function (li) "
            "{ return li.textContent; })"
        )
        assert shown == expected
        await browser.click('button[data-play="termination"]')  # "show me how this breaks"
        await until(browser, js("#step-label"), "step 1 / 3")

    with_lab(body, Lab(coach_seconds=600))  # the whole search, whatever the machine's load


# The default page's first answer: the coach searches for `coach_seconds_default` (3 s), then
# judges what it found; docs/lab.md gives the measured times (p50 and max, wall time on a
# shared 2-core machine). This bound is that measured maximum with room for a loaded machine.
first_answer_s_max = 8.0


def test_the_default_pages_first_coach_answer_has_a_valence_within_seconds() -> None:
    async def body(browser: Browser, base: str) -> None:
        await open_page(browser, base)
        assert await browser.evaluate(js("#title")) == "paxos: you are the network"
        began = time.monotonic()
        await browser.click("#coach-button")
        await until(browser, "!!document.querySelector('#coach-outlook')")
        took = time.monotonic() - began
        assert await browser.evaluate(js("#coach-outlook", "dataset.outlook")) == "bivalent"
        assert "red or blue can still be decided" in await browser.evaluate(js("#coach-outlook"))
        coverage = await browser.evaluate(js("#coach-coverage"))
        assert "checked" in coverage or "Every continuation" in coverage, coverage
        for prop in ("agreement", "validity"):
            status = await browser.evaluate(js(f'p[data-verdict="{prop}"]', "dataset.status"))
            assert status in ("holds", "unknown"), (prop, status)  # never violated: it is Paxos
        assert took < first_answer_s_max, f"the first answer took {took:.1f} s"

    with_lab(body)


def test_the_coach_shows_its_progress_and_can_be_stopped() -> None:
    async def body(browser: Browser, base: str) -> None:
        await open_page(browser, base)
        await browser.click('button[data-action="propose:1:red"]')
        await step_is(browser, 1)
        await browser.click("#coach-button")  # a minute to think: the learner stops it
        await until(browser, "!!document.querySelector('#coach-cancel')")
        await until(
            browser,
            "(function () { var p = document.querySelector('#coach-progress');"
            " return !!p && / [1-9][0-9,]* states/.test(p.textContent); })()",
        )
        began = time.monotonic()
        await browser.click("#coach-cancel")
        await until(browser, "!!document.querySelector('#coach-outlook')")
        assert time.monotonic() - began < 10.0
        coverage = await browser.evaluate(js("#coach-coverage"))
        assert "you cancelled it" in coverage, coverage
        assert await browser.evaluate(js("#coach-outlook", "dataset.outlook")) in (
            "bivalent", "open", "unknown",
        )  # fmt: skip
        assert not await browser.evaluate(js("#coach-button", "disabled"))

    with_lab(body, Lab(coach_seconds=60))


def test_every_tour_runs_to_its_end(tmp_path: Path) -> None:
    folder = Path(os.environ.get("PAXOSD_LAB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    async def body(browser: Browser, base: str) -> None:
        for key, tour in tours.TOURS.items():
            await browser.send("Page.navigate", url=f"{base}?tour={key}")
            await until(browser, js("#tour-title"), tour.title)
            for _ in range(len(tour.stages) * 2):
                if await browser.evaluate(js("#tour", "dataset.finished")) == "true":
                    break
                stage = await browser.evaluate(js("#tour", "dataset.stage"))
                if not await browser.evaluate(js("#tour-show", "hidden")):
                    await browser.click("#tour-show")
                elif not await browser.evaluate(js("#tour-next", "hidden")):
                    await browser.click("#tour-next")
                else:  # a task for the coach
                    await browser.click("#coach-button")
                await until(
                    browser,
                    f"document.getElementById('tour').dataset.stage !== {json.dumps(stage)} || "
                    "document.getElementById('tour').dataset.finished === 'true'",
                )
            assert await browser.evaluate(js("#tour", "dataset.finished")) == "true", key
            assert not await browser.evaluate(js("#tour-finished", "hidden"))
            # The header names the algorithm the tour's nodes run, and the end links onward.
            badge = await browser.evaluate(js("#algorithm-badge"))
            assert badge.startswith(f"algorithm: {tour.config.algorithm}"), (key, badge)
            assert await browser.evaluate(js("#new-algorithm", "value")) == tour.config.algorithm
            following = tours.following(key)
            link = await browser.evaluate(js("#tour-next-link", "getAttribute('href')"))
            if following is None:
                assert await browser.evaluate(js("#tour-next-chapter", "hidden"))
            else:
                assert link == f"?tour={following['key']}", (key, link)
            await browser.evaluate("window.scrollTo(0, 0)")
            await browser.screenshot(folder / f"lab-tour-{key}.png")

    with_lab(body)


def test_a_scenario_page_opens_at_step_0_with_all_seven_nodes_in_view(tmp_path: Path) -> None:
    """`lab scenario split-vote --html`: at 1400x1000 every lifeline header is on screen."""
    from paxosd.cli.lab import _write_diagrams
    from paxosd.lab import scenarios

    page = tmp_path / "split-vote.html"
    _write_diagrams(scenarios.SCENARIOS["split-vote"][0](1), None, str(page))

    async def scenario() -> None:
        browser = Browser()
        try:
            await browser.start()
            await browser.size(1400, 1000)
            await browser.send("Page.navigate", url=page.as_uri())
            await until(browser, STEP, "0")
            rights = await browser.evaluate(
                "Array.prototype.filter.call(document.querySelectorAll('#pxd-diagram text.h'),"
                " function (t) { return /^node \\d+$/.test(t.textContent); })"
                ".map(function (t) { return t.getBoundingClientRect().right; })"
            )
            assert len(rights) == 14, rights  # a header above and below each of 7 lifelines
            assert max(rights) <= 1400, rights
        finally:
            await browser.close()

    asyncio.run(scenario())


def test_a_fresh_page_says_where_to_start_and_the_cards_and_names_stay_honest() -> None:
    async def body(browser: Browser, base: str) -> None:
        await open_page(browser, base)
        assert not await browser.evaluate(js("#start-here", "hidden"))
        cue = await browser.evaluate(js("button.cue", "dataset.action"))
        assert cue is not None and cue.startswith("propose:")
        await browser.click('button[data-action="propose:1:red"]')
        await step_is(browser, 1)
        assert await browser.evaluate(js("#start-here", "hidden")), "gone once you act"
        heads = await browser.evaluate(
            "Array.prototype.map.call(document.querySelectorAll('#diagram-heads span'),"
            " function (s) { return s.textContent; })"
        )
        assert heads == ["node 1", "node 2", "node 3"], heads

        # paxos-holds: once node 3 adopts red from a promise, its card says so.
        await browser.send("Page.navigate", url=f"{base}?tour=paxos-holds")
        await until(browser, js("#tour", "dataset.stage"), "0")
        await browser.click("#tour-show")
        await until(browser, js("#tour", "dataset.stage"), "1")
        await browser.click("#tour-show")
        await until(browser, js("#tour", "dataset.stage"), "2")
        proposing = await browser.evaluate(node_value(3, "proposing"))
        assert proposing == "red (adopted; its client asked for green)", proposing

    with_lab(body)
