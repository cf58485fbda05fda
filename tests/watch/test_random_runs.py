"""Seeded random runs of the hub on two nodes: writes, transactions, deletes of ranges,
compactions, a node that lags and catches up, watchers of every shape that read slowly,
resume on either node, ask for progress, and re-list after "compacted". The watch checker
judges every session; each planted bug is caught by some seed, and no seed fails without
one."""

from __future__ import annotations

import random

import pytest

from paxosd.check.watches import check_session
from paxosd.service.kv.types import Compact, DeleteRange, Put, Range, Txn, prefix_end
from paxosd.watch import CancelReason, Filter, WatchOptions, WatchRequest

from .harness import Client, Cluster

KEYS = [b"a", b"a/1", b"a/2", b"b", b"b/1", b"c"]


def _request(rng: random.Random, revision: int) -> WatchRequest:
    shape = rng.choice(("key", "prefix", "range", "from", "all"))
    key = rng.choice(KEYS)
    end = b""
    if shape == "prefix":
        key = rng.choice((b"a", b"a/", b"b"))
        end = prefix_end(key)
    elif shape == "range":
        end = key + b"\xff"
    elif shape == "from":
        end = b"\0"
    elif shape == "all":
        key, end = b"", b"\0"
    start = rng.choice((0, 0, max(1, revision - rng.randrange(12)), revision + rng.randrange(3)))
    filters = rng.choice(
        (frozenset(), frozenset(), frozenset({Filter.NOPUT}), frozenset({Filter.NODELETE}))
    )
    return WatchRequest(
        key=key,
        range_end=end,
        start_revision=start,
        prev_kv=rng.random() < 0.5,
        filters=filters,
        fragment=rng.random() < 0.3,
    )


def run(seed: int, variant: str = "correct", steps: int = 250) -> list[str]:
    rng = random.Random(seed)
    options = WatchOptions(
        queue_bytes_max=rng.choice((600, 1500, 1 << 20)),
        response_bytes_max=rng.choice((300, 1 << 20)),
        progress_lead_revisions=rng.choice((5, 10_000)),
        variant=variant,
    )
    cluster = Cluster(2, options)
    clients: list[Client] = []
    now = 0.0
    for _ in range(steps):
        roll = rng.random()
        leader = next(i for i in range(2) if i not in cluster.lagging)
        revision = cluster.nodes[leader].revision
        if roll < 0.35:
            cluster.apply(
                Put(key=rng.choice(KEYS), value=b"v%d" % rng.randrange(100) * rng.randrange(1, 8))
            )
        elif roll < 0.42:
            cluster.apply(DeleteRange(key=rng.choice(KEYS)))
        elif roll < 0.45:
            p = rng.choice((b"a", b"b"))
            cluster.apply(DeleteRange(key=p, range_end=prefix_end(p)))
        elif roll < 0.5:
            keys = rng.sample(KEYS, rng.randrange(1, 4))
            cluster.apply(Txn(success=tuple(Put(key=k, value=b"t") for k in keys)))
        elif roll < 0.53:
            compacted = cluster.nodes[leader].machine.store.compact_revision
            if revision > max(2, compacted + 1):
                target = rng.randrange(max(2, compacted + 1), revision + 1)
                cluster.apply(Compact(revision=target))
        elif roll < 0.58:
            if len(clients) < 6:
                client = Client(f"w{len(clients)}", _request(rng, revision))
                client.open(cluster.nodes[rng.randrange(2)])
                clients.append(client)
        elif roll < 0.8 and clients:
            client = rng.choice(clients)
            client.read()
            _after_cancel(client, cluster, rng)
        elif roll < 0.86 and clients:
            client = rng.choice(clients)
            client.read()
            if client.cancelled is None:
                client.resume(cluster.nodes[rng.randrange(2)])
        elif roll < 0.89 and clients:
            client = rng.choice(clients)
            assert client.node is not None and client.watcher is not None
            client.node.hub.progress(client.watcher)
        elif roll < 0.93:
            if cluster.lagging:
                i = cluster.lagging.pop()
                cluster.catch_up(i)
            else:
                cluster.lagging.add(rng.randrange(2))
        else:
            now += rng.uniform(0, 2000)
            for node in cluster.nodes:
                node.hub.tick(now)
    cluster.lagging.clear()
    for i in range(2):
        cluster.catch_up(i)
    for client in clients:
        for _ in range(1000):
            items = client.read()
            _after_cancel(client, cluster, rng)
            if not items:
                break
    reference = cluster.nodes[0].reference()
    problems: list[str] = []
    for client in clients:
        problems += check_session(client.session, reference)
    return problems


def _after_cancel(client: Client, cluster: Cluster, rng: random.Random) -> None:
    """A cancelled watch resumes: where it was told to, or after a re-list."""
    cancelled = client.cancelled
    if cancelled is None:
        return
    node = cluster.nodes[rng.randrange(2)]
    if cancelled.reason is CancelReason.COMPACTED:
        # Re-list the watched range at the node's revision, then watch from the next one.
        request = client.request
        store = node.machine.store
        answer = node.machine.readers()[Range](
            Range(key=request.key or b"\0", range_end=request.range_end)
        )
        listing = {kv.key: kv.value for kv in answer.kvs}  # type: ignore[union-attr]
        client.open(node, store.revision + 1)
        client.session.streams[-1].listed = (store.revision, listing)
        client.last = store.revision
    else:
        client.resume(node)


@pytest.mark.parametrize("seed", range(150))
def test_no_seed_breaks_a_promise(seed: int) -> None:
    assert run(seed) == [], f"replay: run({seed})"


@pytest.mark.parametrize(
    "variant", ["watch-skip-revision", "watch-compaction-race", "watch-early-progress"]
)
def test_each_planted_bug_is_caught(variant: str) -> None:
    caught = [seed for seed in range(150) if run(seed, variant)]
    assert caught, f"{variant} was never caught"
