"""A rebuilding node votes only once it has caught up to the highest snapshot its peers
reported: below it, its peers have truncated the slots into their snapshots, and an acceptor
that lacks them (and says it holds no snapshot) would let a new leader re-decide them."""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import CatchUp, Entries, Prepare, SnapshotInstall
from paxosd.core.multi.records import Configured, Rebuilding
from paxosd.core.types import Ballot, Envelope

from .harness import Net, put


def _catching_up(envelope: Envelope) -> bool:
    return isinstance(envelope.msg, CatchUp | SnapshotInstall | Entries)


def test_a_rebuilding_node_does_not_vote_before_reaching_its_peers_snapshot() -> None:
    net = Net(config=EngineConfig(snapshot_every_slots=5))
    net.elect(1)
    for i in range(12):
        net.call(1, lambda r, i=i: r.propose(put(f"k{i}", i, seq=i + 1)))
        net.deliver_all()
    target = max(net.replicas[n].status().snapshot_slot for n in (1, 2))
    assert target >= 5
    net.crash(3)  # node 3 lost its store; the operator re-initialised it
    net.disks[3] = [Configured(net.configuration), Rebuilding(True)]
    net.restart(3)
    for _ in range(3 * net.config.retransmit_ticks):  # it asks every peer for its state
        net.call(3, lambda r: r.tick())
        net.turn(3)
        net.deliver(lambda e: not _catching_up(e))
        net.drop(_catching_up)  # ... but what it would catch up with never arrives
    status = net.replicas[3].status()
    assert status.rebuild_waiting_for == (), "some peer has not reported yet"
    assert status.chosen_upto < target
    assert status.rebuilding, "it votes again before reaching its peers' snapshot"
    higher = Ballot(50, 2)
    ready = net.step(3, Envelope(2, 3, Prepare(ballot=higher, from_slot=1)))
    assert not ready.send_after_sync and not ready.send_now, "it answered a Prepare"
    net.deliver_all()  # now the snapshot arrives: it catches up, then votes again
    for _ in range(50):
        net.call(3, lambda r: r.tick())
        net.deliver_all()
        if not net.replicas[3].status().rebuilding:
            break
    status = net.replicas[3].status()
    assert not status.rebuilding and status.chosen_upto >= target
