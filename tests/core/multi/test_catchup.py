"""Catching up behind a snapshot (catchup.py, learner.py): a peer that installed a snapshot
while the node it catches up from recorded a newer one is sent the values between the two,
which that node kept, rather than the newer snapshot too (under steady writes, a learner
joining a large cluster could otherwise chase snapshot after snapshot)."""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import SnapshotInstall

from .harness import Net, put

EVERY = 5  # slots between snapshots


def _write(net: Net, seq: int, among: tuple[int, ...] = (1, 2, 3)) -> None:
    net.call(1, lambda r: r.propose(put(f"key-{seq}", "v" * 20, seq=seq)))
    for _ in range(50):
        for node in among:
            net.turn(node)
        if not net.deliver(lambda e: e.src in among and e.dst in among):
            break


def _installs_after_a_newer_snapshot(config: EngineConfig) -> tuple[Net, int]:
    """Node 3 is down while the leader passes its first snapshot; back, it installs that
    snapshot, and is cut off (everything to and from it lost) while the leader passes its
    second one. Returns the net, all caught up after one more write, and how many snapshot
    chunks node 3 was sent once reconnected."""
    net = Net(config=config)
    net.elect(1)
    net.crash(3)
    # A large state and small writes since: the values kept are cheaper to apply than the
    # snapshot is to restore (learner.py, `keeps`).
    net.call(1, lambda r: r.propose(put("large", "v" * 8000, seq=1)))
    net.deliver_all()
    seq = 2
    while net.replicas[1].status().snapshot_slot < EVERY:
        _write(net, seq, (1, 2))
        seq += 1
    net.drop(lambda e: 3 in (e.src, e.dst))  # what was sent to it while down is lost
    net.restart(3)
    net.call(1, lambda r: r.propose(put("tell", 0, seq=seq)))
    seq += 1
    for _ in range(500):
        for node in net.members:
            net.turn(node)
        if net.replicas[3].status().snapshot_slot:
            net.drop(lambda e: 3 in (e.src, e.dst))
            break
        assert net.deliver(), "node 3 installs the first snapshot"
    assert net.replicas[3].status().snapshot_slot == EVERY
    first = net.replicas[1].status().snapshot_slot
    while net.replicas[1].status().snapshot_slot == first:
        _write(net, seq, (1, 2))
        seq += 1
    net.drop(lambda e: 3 in (e.src, e.dst))
    assert net.replicas[3].status().applied < net.replicas[1].status().snapshot_slot
    net.call(1, lambda r: r.propose(put("after", 0, seq=seq)))
    return net, _catch_up(net)


def _catch_up(net: Net) -> int:
    """Let time pass (every node ticks: a lost catch-up request is asked again) until node 3
    has applied what the leader has; how many snapshot chunks it was sent meanwhile."""
    chunks = 0
    for _ in range(500):
        for node in net.members:
            net.call(node, lambda r: r.tick())
            net.turn(node)
        chunks += sum(1 for e in net.inbox if e.dst == 3 and isinstance(e.msg, SnapshotInstall))
        net.deliver()
        if net.replicas[3].status().applied == net.replicas[1].status().applied:
            break
    return chunks


def test_a_peer_behind_a_newer_snapshot_is_sent_the_values_kept_since_the_one_it_has() -> None:
    net, chunks = _installs_after_a_newer_snapshot(
        EngineConfig(snapshot_every_slots=EVERY, snapshot_chunk_bytes=64)
    )
    assert chunks == 0, "no second snapshot"
    leader, lagging = net.replicas[1], net.replicas[3]
    assert lagging.status().applied == leader.status().applied
    assert lagging.learner.machine.snapshot() == leader.learner.machine.snapshot()


def test_with_no_values_kept_the_peer_is_sent_the_newer_snapshot() -> None:
    """The same run keeping nothing behind a snapshot (or more bytes than the limit): the
    peer needs the second snapshot (what the test above shows is spared)."""
    for kept in (0, 100):
        config = EngineConfig(
            snapshot_every_slots=EVERY, snapshot_chunk_bytes=64, retained_bytes_max=kept
        )
        net, chunks = _installs_after_a_newer_snapshot(config)
        assert chunks > 0, kept
        leader, lagging = net.replicas[1], net.replicas[3]
        assert lagging.status().applied == leader.status().applied
        assert lagging.learner.machine.snapshot() == leader.learner.machine.snapshot()


def test_a_fresh_peer_is_sent_the_snapshot_though_every_value_is_kept() -> None:
    """A node with one snapshot keeps every value since slot 1 (the whole state's making):
    a peer with nothing is sent the snapshot, which is cheaper to restore than those values
    are to apply (a learner joining a freshly loaded cluster)."""
    config = EngineConfig(snapshot_every_slots=EVERY, snapshot_chunk_bytes=64)
    net = Net(config=config)
    net.elect(1)
    net.crash(3)
    seq = 1
    while net.replicas[1].status().snapshot_slot < EVERY:
        _write(net, seq, (1, 2))
        seq += 1
    assert min(net.replicas[1].learner.retained) == 1, "every value since slot 1 is kept"
    net.drop(lambda e: 3 in (e.src, e.dst))  # what was sent to it while down is lost
    net.restart(3)
    net.call(1, lambda r: r.propose(put("tell", 0, seq=seq)))
    chunks = _catch_up(net)
    assert chunks > 0
    assert net.replicas[3].status().applied == net.replicas[1].status().applied
