"""A node restarts from its own snapshot where it took it: the Snapshot record carries the slot
it was taken after, and a restart from the store resumes there (not from slot 0, with the
slots the snapshot covered gone from the log)."""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.records import Snapshot

from .harness import Net, put


def test_a_restart_resumes_at_the_snapshot_the_node_took() -> None:
    net = Net(config=EngineConfig(snapshot_every_slots=5))
    net.elect(1)
    for i in range(12):
        net.call(1, lambda r, i=i: r.propose(put(f"k{i}", i, seq=i + 1)))
        net.deliver_all()
    taken = net.replicas[2].status().snapshot_slot
    assert taken >= 5
    snapshots = [r for r in net.disks[2] if isinstance(r, Snapshot)]
    assert snapshots, "no Snapshot record was persisted"
    net.crash(2)
    net.restart(2)
    status = net.replicas[2].status()
    assert status.snapshot_slot == taken, "the restart did not resume at the snapshot taken"
    assert status.applied == taken
    assert snapshots[-1].slot == taken
