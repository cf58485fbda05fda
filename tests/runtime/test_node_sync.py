"""The node process's own sync: `Node.sync`, the one piece of the turn the simulator never runs
(it hosts the driver itself). A store that records every write and sync, in order, shows that
a client's answer leaves only after the records that make it true were synced. The power-loss
test (tests/integration/test_power_loss.py) shows the same of the real file on a real disk."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Accepted, Record
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.runtime.config import local_cluster
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.node import Node
from paxosd.service import Put, StateMachine
from paxosd.storage import MemoryLog


class RecordingStore:
    """A log store that notes, in one list shared with the test, each write and each sync."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.disk = MemoryLog(b"test/node-1")

    def write(self, records: Sequence[Record]) -> None:
        self.log.append(("write", tuple(records)))
        self.disk.write(records)

    def sync(self) -> None:
        self.log.append(("sync", None))
        self.disk.sync()

    def load(self) -> Any:
        return self.disk.load()

    def close(self) -> None:
        self.disk.close()

    def disk_bytes(self) -> int:
        return self.disk.disk_bytes()


class NoPeers:
    def send(self, envelopes: Sequence[Envelope]) -> None:
        assert not envelopes, "a one-node cluster has no one to send to"


def _one_node(tmp_path: Path, log: list[tuple[str, Any]]) -> Node:
    config = local_cluster(1, tmp_path, 7000)[0]
    node = Node(config)
    node.loop = asyncio.get_running_loop()
    store = RecordingStore(log)
    node.store = store  # type: ignore[assignment]
    replica = Replica(
        1,
        Configuration((1,)),
        random.Random(1),
        node.engine_config,
        StateMachine(),
    )
    options = DriverOptions(request_timeout_ms=5000)
    node.driver = Driver(replica, store, NoPeers(), node.clock, node, options)
    return node


def test_the_node_syncs_its_store_before_the_turn_goes_on(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[str, Any]]:
        log: list[tuple[str, Any]] = []
        node = _one_node(tmp_path, log)
        node.sync(lambda: log.append(("turn goes on", None)))
        return log

    assert asyncio.run(scenario()) == [("sync", None), ("turn goes on", None)]


def test_a_write_is_answered_only_after_its_records_were_synced(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[str, Any]]:
        log: list[tuple[str, Any]] = []
        node = _one_node(tmp_path, log)
        driver = node.driver
        assert driver is not None
        while not driver.status.is_leader:  # one node elects itself after its timeout
            driver.tick()
            await asyncio.sleep(0)
        answer = node.answer

        def answered(token: Any, result: Any) -> None:  # the moment the node answers
            log.append(("answered", None))
            answer(token, result)

        node.answer = answered  # type: ignore[method-assign]
        future = node.submit(Put(key="k", value=1), client_id="c", seq=1)
        await asyncio.wait_for(future, 10)
        return log

    log = asyncio.run(scenario())
    answered = log.index(("answered", None))
    written = [
        i
        for i, (kind, records) in enumerate(log)
        if kind == "write" and any(isinstance(r, Accepted) and r.batch for r in records)
    ]
    assert written, f"the write's command was never written to the store: {log}"
    synced = [i for i, (kind, _) in enumerate(log) if kind == "sync" and i > written[0]]
    assert synced and synced[0] < answered, (
        f"the answer left before the record holding the write was synced: {log}"
    )
