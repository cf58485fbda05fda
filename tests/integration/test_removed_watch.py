"""A node removed from the members ends the watches it serves, saying why and where to resume
(runtime/node.py: it will hear of no write again), and ends new ones at once."""

from __future__ import annotations

from pathlib import Path

import httpx

from paxosd import Client

from .cluster import Cluster
from .test_join import _member


def test_a_removed_node_ends_its_watches_with_the_reason_and_where_to_resume(
    tmp_path: Path,
) -> None:
    cluster = Cluster.start(tmp_path, nodes=3)
    try:
        client = Client(cluster.endpoints(), timeout_s=30)
        first = client.put("gone/a", 1)
        url = f"http://{cluster.http(3)}/v1/watch?prefix=gone/&start_revision={first}"
        with httpx.stream("GET", url, timeout=30) as response:
            text = ""
            chunks = response.iter_text()
            while "id: " not in text:
                text += next(chunks)
            _member(cluster.endpoints([1, 2]), "remove", "3")
            for chunk in chunks:
                text += chunk
        assert "event: cancelled" in text, text
        assert "no member of the cluster" in text and '"resume_revision"' in text, text
        # A watch asked of it afterwards ends at its next tick, with the same reason.
        again = httpx.get(url, timeout=10)
        assert "event: cancelled" in again.text and "no member" in again.text, again.text
        client.close()
    finally:
        cluster.stop()
