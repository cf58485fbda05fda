"""The Multi-Paxos replica's rules, each set up by hand on a tiny network."""

from __future__ import annotations

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import Accept, Accepted, Ack, Heartbeat, Nack, Prepare, Promise
from paxosd.core.multi.ready import Role
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Promised
from paxosd.core.types import Ballot, Envelope
from paxosd.service import Get

from .harness import Net, put


def test_a_leader_is_elected_and_commands_are_applied_everywhere_in_order() -> None:
    net = Net()
    net.elect(1)
    for i in range(5):
        net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i + 1)))
    net.deliver_all()
    expected = [put("x", i, seq=i + 1) for i in range(5)]
    for node in net.members:
        assert net.values(node) == expected


def test_queued_commands_are_batched_into_one_slot_per_flush() -> None:
    """Many commands, one flush: one Accept carrying all of them (no timer involved)."""
    net = Net()
    net.elect(1)
    before = net.replicas[1].status().next_slot
    for i in range(100):
        net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i + 1)))
    ready = net.turn(1)
    accepts = [e.msg for e in ready.send_now if isinstance(e.msg, Accept)]
    assert len({a.slot for a in accepts}) == 1 and len(accepts[0].batch) == 100
    assert net.replicas[1].status().next_slot == before + 1


def test_batches_respect_the_count_cap_and_the_pipeline_bound() -> None:
    config = EngineConfig(batch_commands_max=10, pipeline_slots_max=3)
    net = Net(config=config)
    net.elect(1)
    for i in range(100):
        net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i + 1)))
    ready = net.turn(1)
    accepts = [e.msg for e in ready.send_now if isinstance(e.msg, Accept) and e.dst == 2]
    assert [len(a.batch) for a in accepts] == [10, 10, 10]  # 3 slots in flight, no more
    net.deliver_all()
    assert len(net.values(3)) == 100


def test_every_accepted_value_is_persisted_before_the_accepted_reply() -> None:
    """A follower's Accepted leaves in the same step as the record that makes it true."""
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("x", 1)))
    net.turn(1)
    accept = next(e for e in net.inbox if e.dst == 2 and isinstance(e.msg, Accept))
    ready = net.step(2, accept)
    assert any(isinstance(e.msg, Accepted) for e in ready.send_after_sync)
    assert not ready.send_now  # a vote never leaves before the sync
    assert any(isinstance(rec, AcceptedRecord) for rec in ready.records)


def test_a_new_leader_finishes_what_its_predecessor_may_have_chosen() -> None:
    """Phase 1 reports accepted values; the new leader proposes the highest-ballot one."""
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("x", "kept")))
    net.turn(1)
    # Only node 2 gets the Accept; the leader dies before anyone learns the value.
    net.deliver(lambda e: e.dst == 2 and isinstance(e.msg, Accept))
    net.crash(1)
    net.inbox.clear()
    net.elect(3)
    assert put("x", "kept") in net.values(3)
    assert net.values(2) == net.values(3)


def test_gaps_are_filled_with_no_ops() -> None:
    """A slot nobody reports is filled with a no-op, so later slots can apply."""
    net = Net()
    net.elect(1)
    for i in range(3):
        net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i + 1)))
        net.turn(1)
    # Node 2 receives the Accepts of the second and third slots, not the first.
    accepts = [e for e in net.inbox if e.dst == 2 and isinstance(e.msg, Accept)]
    first = min(e.msg.slot for e in accepts)
    net.deliver(lambda e: e.dst == 2 and isinstance(e.msg, Accept) and e.msg.slot > first)
    net.crash(1)
    net.inbox.clear()
    net.elect(2)
    applied = net.applied[2]
    assert [a.payload for a in applied if a.slot == first] == []  # a no-op slot
    assert put("x", 2, seq=3) in net.values(2)


def test_a_prepare_below_the_promise_is_refused_with_a_nack() -> None:
    net = Net()
    net.elect(1)
    replica = net.replicas[2]
    replica.quiet_ticks = 1000  # no longer hears the leader
    replica.leader_hint = None
    promised = replica.status().promised
    assert promised is not None
    low = Ballot(0, 3)
    ready = net.step(2, Envelope(3, 2, Prepare(ballot=low, from_slot=1)))
    assert [e.msg for e in ready.send_after_sync] == [Nack(ballot=low, promised=promised)]


def test_a_promise_is_persisted_before_it_is_sent() -> None:
    net = Net()
    replica = net.replicas[2]
    high = Ballot(5, 3)
    ready = net.step(2, Envelope(3, 2, Prepare(ballot=high, from_slot=1)))
    assert ready.records == (Promised(high),)
    assert not ready.send_now and isinstance(ready.send_after_sync[0].msg, Promise)
    assert replica.status().promised == high


def test_a_leader_that_meets_a_higher_ballot_steps_down() -> None:
    net = Net()
    net.elect(1)
    higher = Ballot(99, 2)
    ours = net.replicas[1].status().ballot
    assert ours is not None
    ready = net.step(1, Envelope(2, 1, Nack(ballot=ours, promised=higher)))
    status = net.replicas[1].status()
    assert status.role is Role.FOLLOWER and status.leader == 2
    assert [n.event for n in ready.notes] == ["stepped_down"]


def test_a_leader_cut_off_from_a_quorum_steps_down() -> None:
    net = Net()
    net.elect(1)
    net.inbox.clear()
    for _ in range(net.config.election_ticks_max + 2):
        net.call(1, lambda r: r.tick())
        net.inbox.clear()  # nothing gets through
    assert net.replicas[1].status().role is Role.FOLLOWER


def test_reads_wait_for_a_quorum_of_acks_sent_after_the_read() -> None:
    """Read-index: confirmation must come from heartbeats sent after the read arrived."""
    net = Net()
    net.elect(1)
    net.deliver_all()
    net.call(1, lambda r: r.read(1, Get(key="x")))
    assert net.reads[1] == []
    ready = net.turn(1)  # starts a heartbeat round for the read
    assert any(isinstance(e.msg, Heartbeat) for e in ready.send_after_sync)
    assert net.reads[1] == []
    net.deliver(lambda e: isinstance(e.msg, Heartbeat) and e.dst == 2)
    net.deliver(lambda e: isinstance(e.msg, Ack))
    assert net.reads[1] == [(1, True)]


def test_a_stale_ack_does_not_confirm_a_later_read() -> None:
    net = Net()
    net.elect(1)
    net.deliver_all()
    leader = net.replicas[1]
    lead = leader.leading
    assert lead is not None
    old_round = lead.read_index.round
    net.call(1, lambda r: r.read(2, Get(key="x")))
    net.step(1, Envelope(2, 1, Ack(ballot=lead.ballot, read_round=old_round, applied=0)))
    net.step(1, Envelope(3, 1, Ack(ballot=lead.ballot, read_round=old_round, applied=0)))
    assert net.reads[1] == []


def test_the_planted_bug_answers_reads_without_confirmation() -> None:
    net = Net(config=EngineConfig(variant="unconfirmed-reads"))
    net.elect(1)
    net.deliver_all()
    net.call(1, lambda r: r.read(3, Get(key="x")))
    net.turn(1)
    assert net.reads[1] == [(3, True)]


def test_a_follower_serves_reads_confirmed_by_the_leader() -> None:
    """A follower asks the leader for a confirmed read index, then answers once applied."""
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("x", 1)))
    net.deliver_all()
    net.call(2, lambda r: r.read(4, Get(key="x")))
    assert net.reads[2] == []
    net.deliver_all()
    assert net.reads[2] == [(4, True)]
    assert net.replicas[2].status().applied >= net.replicas[1].status().chosen_upto


def test_a_node_that_knows_no_leader_refuses_reads() -> None:
    net = Net()
    net.call(2, lambda r: r.read(5, Get(key="x")))
    net.turn(2)
    assert net.reads[2] == [(5, False)]


def test_a_lagging_follower_catches_up_with_entries() -> None:
    """A node that was down learns what it missed from the leader (CatchUp / Entries)."""
    net = Net()
    net.elect(1)
    net.crash(3)
    for i in range(5):
        net.call(1, lambda r, i=i: r.propose(put("x", i, seq=i + 1)))
        net.deliver_all()
    assert net.values(3) == []
    net.restart(3)
    net.call(1, lambda r: r.propose(put("x", "last", seq=9)))
    net.deliver_all()
    assert net.values(3) == net.values(1)


def test_a_follower_far_behind_gets_a_snapshot() -> None:
    """Slots truncated into a snapshot come back as a SnapshotInstall."""
    config = EngineConfig(snapshot_every_slots=5)
    net = Net(config=config)
    net.elect(1)
    net.crash(3)
    for i in range(12):
        net.call(1, lambda r, i=i: r.propose(put(f"k{i}", i, seq=i + 1)))
        net.deliver_all()
    assert net.replicas[1].status().snapshot_slot >= 10
    net.restart(3)
    net.call(1, lambda r: r.propose(put("x", "last", seq=99)))
    net.deliver_all()
    assert net.replicas[3].status().applied == net.replicas[1].status().applied
    assert net.replicas[3].learner.machine.snapshot() == net.replicas[1].learner.machine.snapshot()


def test_a_restarted_node_keeps_its_promise_and_accepted_entries() -> None:
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("x", 1)))
    net.deliver_all()
    promised = net.replicas[2].status().promised
    entries = net.replicas[2].acceptor.report(1)
    net.crash(2)
    net.restart(2)
    assert net.replicas[2].status().promised == promised
    assert net.replicas[2].acceptor.report(1) == entries


def test_a_follower_forwards_commands_to_the_leader() -> None:
    net = Net()
    net.elect(1)
    net.call(2, lambda r: r.propose(put("y", "via 2")))
    net.deliver_all()
    assert put("y", "via 2") in net.values(1)


def test_a_node_cut_off_does_not_raise_its_ballot_and_does_not_disrupt_on_return() -> None:
    """Pre-vote: an isolated node asks before it promises itself a higher ballot; nobody
    answers, so its promise stays put, and when it comes back the leader keeps leading."""
    net = Net()
    net.elect(1)
    net.deliver_all()
    before = net.replicas[3].status().promised
    for _ in range(200):  # many election timeouts, every message of node 3 lost
        net.call(3, lambda r: r.tick())
        net.turn(3)
        net.drop(lambda e: e.src == 3 or e.dst == 3)
    assert net.replicas[3].status().promised == before
    net.call(1, lambda r: r.propose(put("x", "after")))
    for _ in range(3):
        net.call(1, lambda r: r.tick())
    net.deliver_all()
    assert net.replicas[1].status().is_leader
    assert put("x", "after") in net.values(3)


def test_pre_votes_are_refused_while_a_live_leader_is_heard() -> None:
    from paxosd.core.multi.messages import PreVote, PreVoteReply

    net = Net()
    net.elect(1)
    net.deliver_all()
    ballot = Ballot(50, 3)
    net.replicas[2].quiet_ticks = 0
    ready = net.step(2, Envelope(3, 2, PreVote(ballot=ballot)))
    assert [e.msg for e in ready.send_after_sync] == [PreVoteReply(ballot=ballot, granted=False)]
