"""Two ways a cluster could break for good, and the rules that prevent them: a ballot at the top
of its range, and a node that lost its store voting as if it had none."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paxosd.core.multi.messages import (
    Accept,
    Prepare,
    PreVote,
    PreVoteReply,
    StateQuery,
    StateReport,
)
from paxosd.core.multi.ready import RebuildWait, Role
from paxosd.core.multi.records import Configured, Rebuilding
from paxosd.core.types import (
    Ballot,
    Envelope,
    ballot_round_max,
    ballot_round_step_max,
    node_id_max,
)
from paxosd.runtime import codec
from paxosd.storage.snapshots import MemorySnapshots

from .harness import Net, put

# -- ballots ---------------------------------------------------------------------------------


@given(st.integers(0, ballot_round_max), st.integers(0, node_id_max))
def test_every_ballot_in_range_crosses_the_wire_and_only_those(round_: int, node: int) -> None:
    """The range is one fact: every ballot the core may hold, the wire carries exactly."""
    ballot = Ballot(round_, node)
    assert ballot.in_range
    frame = codec.encode(Prepare(ballot=ballot, from_slot=1))
    (payload,) = codec.FrameReader().feed(frame)
    assert codec.decode(payload) == Prepare(ballot=ballot, from_slot=1)


@given(st.integers(0, ballot_round_max - 1))
def test_every_promisable_ballot_has_a_successor_the_wire_carries(round_: int) -> None:
    """Whatever a node promised, some higher ballot can still be made and sent."""
    ballot = Ballot(round_, 1)
    assert ballot.has_successor
    successor = ballot.next_for(2)
    (payload,) = codec.FrameReader().feed(codec.encode(Prepare(ballot=successor, from_slot=1)))
    assert codec.decode(payload).ballot == successor > ballot


@given(st.integers(ballot_round_max + 1, 2**64 - 1))
def test_a_round_beyond_the_range_is_refused_by_the_wire(round_: int) -> None:
    import msgpack
    import pytest

    payload = msgpack.packb([1, [round_, 1], 1])
    with pytest.raises(codec.WireError, match="outside"):
        codec.decode(payload)


def test_the_top_ballot_is_never_promised() -> None:
    """A promise at the very top of the range would leave no ballot anyone could lead with:
    the cluster would be wedged for good, across restarts."""
    net = Net()
    top = Ballot(ballot_round_max, 3)
    for replica in net.replicas.values():
        replica.highest_seen = Ballot(ballot_round_max - 1, 3)  # the jump rule aside
    ready = net.step(2, Envelope(3, 2, Prepare(ballot=top, from_slot=1)))
    assert net.replicas[2].status().promised is None
    assert not ready.records
    net.step(2, Envelope(3, 2, Accept(ballot=top, slot=1, batch=(), commit=0)))
    assert net.replicas[2].status().promised is None


def test_a_ballot_far_above_anything_seen_is_refused_and_noted() -> None:
    """A forged or corrupted frame cannot use up the ballot space in one jump: the node
    refuses it, says so, and the cluster goes on electing leaders."""
    net = Net()
    net.elect(1)
    promised = net.replicas[2].status().promised
    assert promised is not None
    forged = Ballot(promised.round + ballot_round_step_max + 1, 1)
    ready = net.step(2, Envelope(1, 2, Prepare(ballot=forged, from_slot=10**9)))
    assert net.replicas[2].status().promised == promised
    assert [n.event for n in ready.notes] == ["ballot_refused"]
    net.call(1, lambda r: r.propose(put("x", "after")))
    net.deliver_all()
    assert put("x", "after") in net.values(2)


def test_a_ballot_just_within_the_step_is_followed() -> None:
    net = Net()
    net.elect(1)
    promised = net.replicas[2].status().promised
    assert promised is not None
    ahead = Ballot(promised.round + ballot_round_step_max, 3)
    net.replicas[2].quiet_ticks = 10**6  # not sticky to the old leader
    net.step(2, Envelope(3, 2, Prepare(ballot=ahead, from_slot=1)))
    assert net.replicas[2].status().promised == ahead


def test_a_node_at_the_top_of_the_range_does_not_campaign() -> None:
    net = Net(nodes=1)
    replica = net.replicas[1]
    # (a peer's ballot: node 0's ballots are the marks of epochs.py, which name no leader)
    replica.highest_seen = Ballot(ballot_round_max, 2)
    for _ in range(100):
        net.call(1, lambda r: r.tick())
    ready = net.turn(1)
    assert replica.status().role is Role.FOLLOWER
    assert "ballot_space_exhausted" in [n.event for n in ready.notes]


# -- amnesia -------------------------------------------------------------------------------


def _wipe(net: Net, node: int, rebuilding: bool = True) -> None:
    """The node's disk is gone; the operator restarts it on a new store (marked rebuilding
    by `paxosd node --reinitialize`, unless `rebuilding` is False: the planted bug)."""
    net.crash(node)
    made = [Configured(net.configuration)]
    net.disks[node] = [*made, Rebuilding(True)] if rebuilding else made
    net.files[node] = MemorySnapshots()
    net.restart(node)


def _lose_a_write_setup(net: Net) -> bytes:
    """The adversarial recipe: node 3 falls behind, a write is chosen by nodes 1 and 2, then
    1 goes down and 2 loses its disk. Nodes 2 and 3 make a quorum."""
    net.elect(1)
    net.crash(3)
    write = put("amnesia", "acked")
    net.call(1, lambda r: r.propose(write))
    net.deliver_all()
    assert write in net.values(1) and write in net.values(2)
    net.crash(1)
    return write


def test_an_empty_voter_loses_an_acknowledged_write() -> None:
    """The bug the rule below prevents: node 2 back on an empty store votes as new, and the
    quorum {2, 3} re-decides the slot of an acknowledged write."""
    net = Net()
    write = _lose_a_write_setup(net)
    _wipe(net, 2, rebuilding=False)
    net.restart(3)
    net.elect(3)
    assert write not in net.values(3)


def test_a_rebuilding_node_does_not_vote_until_every_peer_reported() -> None:
    net = Net()
    write = _lose_a_write_setup(net)
    _wipe(net, 2)
    net.restart(3)
    for _ in range(200):  # elections come and go: 3 cannot win without 2's vote
        for node in (2, 3):
            net.call(node, lambda r: r.tick())
        net.deliver_all()
    assert net.replicas[2].status().rebuilding
    assert not any(r.status().is_leader for n, r in net.replicas.items() if n != 1)
    assert write not in net.values(3)
    # Node 1 comes back: node 2 hears from every peer, adopts the state, and votes again.
    net.restart(1)
    for _ in range(200):
        for node in net.members:
            net.call(node, lambda r: r.tick())
        net.deliver_all()
        if not net.replicas[2].status().rebuilding:
            break
    assert not net.replicas[2].status().rebuilding
    assert Rebuilding(False) in net.disks[2]
    leader = _tick_until_a_leader(net)
    net.call(leader, lambda r: r.propose(put("after", 1, seq=2)))
    net.deliver_all()
    for node in net.members:
        assert write in net.values(node), node


def _tick_until_a_leader(net: Net) -> int:
    for _ in range(500):
        leaders = [n for n, r in net.replicas.items() if r.status().is_leader]
        if leaders:
            return leaders[0]
        for node in net.members:
            net.call(node, lambda r: r.tick())
        net.deliver_all()
    raise AssertionError("no leader")


def test_a_rebuilding_nodes_report_does_not_count() -> None:
    """Two amnesiacs cannot vouch for each other."""
    net = Net()
    net.elect(1)
    _wipe(net, 2)
    _wipe(net, 3)
    ready = net.step(3, Envelope(2, 3, StateQuery()))
    (report,) = [e.msg for e in ready.send_after_sync]
    assert report == StateReport(whole=False, promised=None, accepted=(), snapshot_slot=0)
    net.step(2, Envelope(3, 2, report))
    rebuilding = net.replicas[2].rebuilding
    assert rebuilding is not None and 3 not in rebuilding.reports


def test_a_rebuild_says_whom_it_waits_for_and_why() -> None:
    """An operator must be able to see why a rebuild stalls: a peer that never answered (down
    or unreachable) is told from one that answered that it is rebuilding too."""
    net = Net(nodes=5)
    net.elect(1)
    _wipe(net, 2)
    _wipe(net, 3)
    net.crash(4)
    status = net.replicas[2].status()
    assert status.role is Role.REBUILDING and status.rebuilding
    assert status.rebuild_waiting_for == tuple((n, RebuildWait.NO_ANSWER) for n in (1, 3, 4, 5))
    for _ in range(10):
        for node in (1, 2, 3, 5):
            net.call(node, lambda r: r.tick())
        net.deliver_all()
    assert net.replicas[2].status().rebuild_waiting_for == (
        (3, RebuildWait.REBUILDING),
        (4, RebuildWait.NO_ANSWER),
    )
    assert net.replicas[2].status().to_json()["rebuild_waiting_for"] == {
        "3": "rebuilding",
        "4": "no_answer",
    }
    # A rebuilding node does not vote: no answer to a Prepare, a refused PreVote.
    ready = net.step(2, Envelope(5, 2, Prepare(ballot=Ballot(9, 5), from_slot=1)))
    assert ready.send_after_sync == () and ready.records == ()
    ready = net.step(2, Envelope(5, 2, PreVote(ballot=Ballot(9, 5))))
    assert [e.msg for e in ready.send_after_sync] == [
        PreVoteReply(ballot=Ballot(9, 5), granted=False)
    ]


def test_a_rebuilt_node_promises_at_least_what_any_peer_promised() -> None:
    net = Net()
    net.elect(1)
    high = Ballot(40, 3)
    net.replicas[3].quiet_ticks = 10**6
    net.step(3, Envelope(1, 3, Prepare(ballot=high, from_slot=1)))  # a promise only 3 knows
    _wipe(net, 2)
    for _ in range(50):
        for node in net.members:
            net.call(node, lambda r: r.tick())
        net.deliver_all()
        if not net.replicas[2].status().rebuilding:
            break
    promised = net.replicas[2].status().promised
    assert promised is not None and promised >= high


def test_after_every_report_a_rebuilding_node_still_does_not_vote_below_the_target() -> None:
    """The rule the reports alone do not keep: a value chosen with the lost vote may survive
    only in a peer's snapshot (its entries truncated). So even once every peer reported, a
    rebuilding node votes only when its chosen point has reached the highest snapshot any of
    them has; before that, no Promise and no Accepted, whatever it is asked."""
    from paxosd.core.multi.config import EngineConfig

    net = Net(config=EngineConfig(snapshot_every_slots=4))
    net.elect(1)
    for seq in range(1, 9):
        net.call(1, lambda r, s=seq: r.propose(put(f"k{s}", s, seq=s)))
        net.deliver_all()
    target = min(net.replicas[n].status().snapshot_slot for n in (1, 3))
    assert target >= 4
    _wipe(net, 2)
    net.turn(2)
    for _ in range(net.config.retransmit_ticks):
        net.call(2, lambda r: r.tick())
    queries = net.turn(2).send_after_sync
    assert {e.dst for e in queries} == {1, 3}
    net.deliver(lambda e: isinstance(e.msg, StateQuery))  # 1 and 3 answer ...
    net.drop(lambda e: e.dst != 2)
    net.deliver(lambda e: isinstance(e.msg, StateReport))  # ... and 2 merges their reports
    net.drop(lambda e: True)  # its catch-up request is lost: it stays below the target
    replica = net.replicas[2]
    assert replica.rebuilding is not None and replica.rebuilding.target == target
    assert replica.status().chosen_upto < target and replica.status().rebuilding
    high = Ballot(9, 3)
    for asked in (
        Prepare(ballot=high, from_slot=1),
        Accept(ballot=high, slot=target + 1, batch=(b"x",), commit=0),
        PreVote(ballot=high),
    ):
        ready = net.step(2, Envelope(3, 2, asked))
        votes = [e.msg for e in ready.send_after_sync if not isinstance(e.msg, PreVoteReply)]
        assert votes == [], f"a vote below the target: {votes}"
        granted = [e.msg.granted for e in ready.send_after_sync if isinstance(e.msg, PreVoteReply)]
        assert not any(granted)
        assert not [r for r in ready.records if type(r).__name__ in ("Promised", "Accepted")]
    # It catches up to the snapshot (from the leader it heard), and only then votes.
    for _ in range(50):
        for node in net.members:
            net.call(node, lambda r: r.tick())
        net.deliver_all()
        if not replica.status().rebuilding:
            break
    assert not replica.status().rebuilding and replica.status().chosen_upto >= target
    ready = net.step(2, Envelope(1, 2, Prepare(ballot=Ballot(20, 1), from_slot=1)))
    assert [type(e.msg).__name__ for e in ready.send_after_sync] == ["Promise"]
