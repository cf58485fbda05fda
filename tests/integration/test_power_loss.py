"""A power cut of every node at once loses no acknowledged write: real `paxosd node`
processes, whose stores keep only what they synced (tests/integration/powerloss: an
LD_PRELOAD shim records each fsync; after kill -9 the data directories are rebuilt from that
record alone, as a power cut would leave them).

A kill -9 alone cannot show this: the kernel keeps the page cache, so a node that answered
before its fsync (or never fsynced) loses nothing in a process crash. This test fails if the
node's sync is removed (`Node.sync` without `store.sync()`) or if the store's append stops
calling fdatasync; the mutation suite (`make mutants`) plants both.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from paxosd import Client

from .cluster import Cluster
from .powerloss import build_shim, cut_power, environment

writers = 3
write_s = 2.0  # of writes before each power cut
rounds = 2


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shim(tmp_path_factory.mktemp("faultfs"))


class Writers:
    """Clients writing distinct keys, each remembering what was acknowledged."""

    def __init__(self, cluster: Cluster, round_: int) -> None:
        self.acknowledged: dict[str, int] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._write, args=(cluster, f"r{round_}w{i}"), daemon=True)
            for i in range(writers)
        ]

    def _write(self, cluster: Cluster, prefix: str) -> None:
        client = Client(cluster.endpoints(), timeout_s=2.0)
        n = 0
        while not self.stop.is_set():
            key = f"{prefix}-{n}"
            try:
                client.put(key, n)
            except Exception:
                continue  # unknown outcome, or no leader for now: not acknowledged
            with self.lock:
                self.acknowledged[key] = n
            n += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_a_power_cut_of_every_node_loses_no_acknowledged_write(tmp_path: Path, shim: Path) -> None:
    shadows = {n: tmp_path / f"shadow{n}" for n in (1, 2, 3)}
    cluster = Cluster.start(
        tmp_path,
        3,
        node_env=lambda n: environment(shim, tmp_path / f"node{n}", shadows[n]),
    )
    acknowledged: dict[str, int] = {}
    lost_bytes = 0
    try:
        for round_ in range(rounds):
            with Writers(cluster, round_) as writing:
                deadline = time.monotonic() + write_s
                while time.monotonic() < deadline or len(writing.acknowledged) < 50:
                    time.sleep(0.05)
                    assert time.monotonic() < deadline + 60, "fewer than 50 writes in 60 s"
                for node in (1, 2, 3):  # the power fails: every node at once
                    cluster.kill9(node)
                with writing.lock:
                    acknowledged.update(writing.acknowledged)
            for node in (1, 2, 3):
                cut = cut_power(tmp_path / f"node{node}", shadows[node])
                assert cut.files > 0, f"node {node}: nothing survived, not even its store"
                lost_bytes += cut.bytes_lost
            for node in (1, 2, 3):
                cluster.launch(node)
            cluster.wait_for_leader()
            reader = Client(cluster.endpoints(), timeout_s=10.0)
            missing = []
            for key, value in sorted(acknowledged.items()):
                found = reader.get(key)
                if found is None or found.value != value:
                    missing.append(f"{key}={value} (read {found})")
            assert not missing, (
                f"round {round_}: {len(missing)} of {len(acknowledged)} acknowledged writes "
                f"lost in the power cut: {missing[:5]}"
            )
    finally:
        cluster.stop()
    assert len(acknowledged) >= 100
    print(f"{len(acknowledged)} acknowledged writes survived {rounds} power cuts "
          f"that dropped {lost_bytes} unsynced bytes")  # fmt: skip
