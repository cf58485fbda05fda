"""Every queue of the engine is bounded, and a proposal it cannot take is refused out loud."""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import Forward, SnapshotInstall
from paxosd.core.multi.ready import Proposal

from .harness import Net, put


def test_propose_says_what_it_did() -> None:
    net = Net()
    assert net.call(2, lambda r: r.propose(put("x", 1))) is Proposal.NO_LEADER
    net.elect(1)
    assert net.call(1, lambda r: r.propose(put("x", 1))) is Proposal.QUEUED
    assert net.call(2, lambda r: r.propose(put("x", 2))) is Proposal.FORWARDED


def test_the_leaders_queue_refuses_commands_past_its_limit() -> None:
    config = EngineConfig(queue_commands_max=5, pipeline_slots_max=1)
    net = Net(config=config)
    net.elect(1)
    outcomes = [net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i))) for i in range(7)]
    assert outcomes == [Proposal.QUEUED] * 5 + [Proposal.QUEUE_FULL] * 2
    net.deliver_all()
    assert len(net.values(2)) == 5  # the refused ones were never proposed


def test_a_follower_forwards_in_messages_of_bounded_size() -> None:
    config = EngineConfig(batch_bytes_max=1000, forward_bytes_max=1000)
    net = Net(config=config)
    net.elect(1)
    command = b"c" * 300
    for _ in range(10):
        assert net.call(2, lambda r: r.propose(command)) is Proposal.FORWARDED
    ready = net.turn(2)
    forwards = [e.msg for e in ready.send_after_sync if isinstance(e.msg, Forward)]
    assert [len(f.commands) for f in forwards] == [3, 3, 3, 1]
    assert all(sum(map(len, f.commands)) <= 1000 for f in forwards)


def test_a_large_snapshot_travels_in_chunks_and_installs_whole() -> None:
    config = EngineConfig(snapshot_every_slots=5, snapshot_chunk_bytes=64)
    net = Net(config=config)
    net.elect(1)
    net.crash(3)
    for i in range(12):
        net.call(1, lambda r, i=i: r.propose(put(f"key-{i}", "v" * 20, seq=i + 1)))
        net.deliver_all()
    net.restart(3)
    net.call(1, lambda r: r.propose(put("x", "last", seq=99)))
    chunks = []
    for _ in range(100):
        for node in net.members:
            net.turn(node)
        chunks += [e.msg for e in net.inbox if isinstance(e.msg, SnapshotInstall)]
        if not net.deliver():
            break
    assert len(chunks) > 3 and all(len(c.data) <= 64 for c in chunks)
    assert net.replicas[3].status().applied == net.replicas[1].status().applied
    assert net.replicas[3].learner.machine.snapshot() == net.replicas[1].learner.machine.snapshot()
