"""The dashboard's live feed of a prefix, in a real headless Chromium: the browser's own
EventSource reads /v1/watch from the node that served the page."""

from __future__ import annotations

import asyncio

from paxosd.service.kv.types import DeleteRange, Put
from tests.browser import Browser, requires_chromium

from .test_dashboard import _text, cluster

pytestmark = requires_chromium


def test_the_feed_shows_every_change_of_the_prefix_as_it_happens() -> None:
    async def scenario() -> None:
        async with cluster() as running:
            node = running.nodes[0]
            browser = Browser()
            try:
                await browser.start()
                await browser.send("Page.navigate", url=running.url(1))
                await browser.wait_for("document.readyState", "complete")
                await browser.evaluate(
                    "document.querySelector('#watch-prefix').value = 'feed/';"
                    "document.querySelector('#watch-button').click()"
                )
                await browser.wait_for(
                    "document.querySelector('#watch-state').textContent.startsWith('watching')",
                    True,
                )
                await node.execute(Put(key=b"feed/a", value=b'{"n": 1}'))
                await node.execute(Put(key=b"other", value=b"1"))
                await node.execute(DeleteRange(key=b"feed/a"))
                await browser.wait_for("document.querySelectorAll('#watch-feed li').length", 2)
                newest = await browser.evaluate(_text("#watch-feed li"))
                assert newest.endswith("delete feed/a")
                oldest = await browser.evaluate(
                    "document.querySelector('#watch-feed li:last-child').textContent"
                )
                assert oldest.endswith('put feed/a = {"n":1}')
            finally:
                await browser.close()

    asyncio.run(scenario())
