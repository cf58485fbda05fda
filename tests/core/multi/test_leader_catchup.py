"""A new leader that lacks chosen slots its peers have truncated into their snapshots fetches
them, and keeps asking until it has them: until then nothing it proposes can be applied, so a
single lost CatchUp (or snapshot chunk) must not leave it leading a cluster that never answers.
"""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import CatchUp, Entries, SnapshotInstall
from paxosd.core.multi.ready import Role

from .harness import Net, put


def _catching_up(envelope: object) -> bool:
    return isinstance(getattr(envelope, "msg", None), CatchUp | SnapshotInstall | Entries)


def test_a_new_leader_behind_its_peers_snapshot_keeps_asking_until_it_has_it() -> None:
    config = EngineConfig(snapshot_every_slots=5, snapshot_chunk_bytes=64)
    net = Net(config=config)
    net.elect(1)
    net.crash(3)  # node 3 misses everything below
    for i in range(12):
        net.call(1, lambda r, i=i: r.propose(put(f"key-{i}", "v" * 20, seq=i + 1)))
        net.deliver_all()
    behind = net.replicas[2].status().snapshot_slot
    assert behind > 0
    net.crash(1)
    net.restart(3)
    for node in (2, 3):
        net.replicas[node].quiet_ticks = config.election_ticks_min
    leader = net.replicas[3]
    while leader.status().role is not Role.LEADER:
        net.call(3, lambda r: r.tick())
        net.turn(3)
        net.deliver(lambda e: not _catching_up(e))
        net.drop(_catching_up)  # the first requests for the missing slots are lost
    assert leader.status().chosen_upto < behind
    asked_again = False
    for _ in range(4 * config.catchup_timeout_ticks):
        net.call(3, lambda r: r.tick())
        net.turn(3)
        asked_again = asked_again or any(_catching_up(e) for e in net.inbox)
        net.deliver_all()
    assert asked_again, "the leader never asked again for the slots it lacks"
    assert leader.status().chosen_upto >= behind
    assert leader.status().applied == net.replicas[2].status().applied
