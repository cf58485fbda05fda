"""Leadership transfer: the leader holds new batches, waits until its target has applied
everything chosen, tells it to campaign, and the target wins although the others still hear
the old leader; commands proposed meanwhile are applied once, by the new leader."""

from __future__ import annotations

from paxosd.core.multi.messages import Accept, Prepare, TimeoutNow
from paxosd.core.multi.ready import Role
from paxosd.core.types import Ballot, Envelope

from .harness import Net, put


def _tick_leader(net: Net, node: int) -> None:
    net.call(node, lambda r: r.tick())
    net.turn(node)


def test_the_leader_hands_over_and_writes_meanwhile_are_applied_once() -> None:
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("before", 1, seq=1)))
    net.deliver_all()
    assert net.call(1, lambda r: r.transfer_leadership(3)) is None
    assert net.replicas[1].status().transferring_to == 3
    # Proposed during the handover: held, never put in a batch by the old leader.
    net.call(1, lambda r: r.propose(put("during", 2, seq=2)))
    ready = net.turn(1)
    assert not [e for e in ready.send_now if isinstance(e.msg, Accept)]
    net.deliver_all()
    assert net.replicas[3].status().is_leader, net.replicas[3].status()
    assert net.replicas[1].status().role is Role.FOLLOWER
    assert net.replicas[2].status().leader == 3
    net.deliver_all()
    for node in net.members:
        assert net.values(node).count(put("during", 2, seq=2)) == 1, node
        assert net.values(node)[0] == put("before", 1, seq=1)


def test_the_target_is_told_only_once_it_has_applied_everything_chosen() -> None:
    net = Net()
    net.elect(1)
    net.crash(3)  # node 3 misses a write
    net.call(1, lambda r: r.propose(put("k", 1)))
    net.deliver_all()
    net.restart(3)
    assert net.call(1, lambda r: r.transfer_leadership(3)) is None
    ready = net.turn(1)
    assert not [e for e in ready.send_after_sync if isinstance(e.msg, TimeoutNow)]
    net.deliver_all()  # node 3 learns the commit point, catches up, acks
    for _ in range(net.config.heartbeat_ticks + 1):
        _tick_leader(net, 1)
        net.deliver_all()
        if net.replicas[3].status().is_leader:
            break
    assert net.replicas[3].status().is_leader
    assert put("k", 1) in net.values(3)


def test_a_target_that_caught_up_without_promising_the_leaders_ballot_takes_over() -> None:
    """Node 3 was down while node 1 was elected and no write came after: it learned the
    chosen slots and the leader from heartbeats, never a Prepare or an Accept of the leader's
    ballot, so its promise is older. The TimeoutNow of the leader it follows makes it
    campaign all the same (`paxosd member transfer-leader 3` on an idle cluster whose node 3
    started last never took effect)."""
    net = Net()
    net.crash(3)
    net.elect(1)
    net.restart(3)
    for _ in range(net.config.heartbeat_ticks + 1):
        _tick_leader(net, 1)
        net.deliver_all()
    target = net.replicas[3]
    assert target.status().leader == 1 and target.acceptor.promised != _ballot(net, 1)
    assert net.call(1, lambda r: r.transfer_leadership(3)) is None
    for _ in range(net.config.heartbeat_ticks + 1):
        _tick_leader(net, 1)
        net.deliver_all()
        if target.status().is_leader:
            break
    assert target.status().is_leader, target.status()


def test_a_timeout_now_from_a_deposed_leader_is_ignored() -> None:
    """Node 1 handed over and lost: its TimeoutNow, delivered late, starts no election."""
    net = Net()
    net.elect(1)
    stale = TimeoutNow(ballot=_ballot(net, 1))
    net.elect(2)
    net.deliver_all()
    ready = net.step(3, _envelope(1, 3, stale))
    assert not [e for e in ready.send_now if isinstance(e.msg, Prepare)]
    assert net.replicas[3].status().leader == 2


def test_peers_that_still_hear_the_leader_promise_a_handed_over_prepare_only() -> None:
    """Stickiness refuses a node that was cut off; a node the leader chose is answered."""
    net = Net()
    net.elect(1)
    net.deliver_all()
    follower = net.replicas[2]
    assert follower._sticky(3)
    ballot = net.replicas[3]._next_ballot()
    assert ballot is not None
    plain = Prepare(ballot=ballot, from_slot=1)
    handed = Prepare(ballot=ballot, from_slot=1, transfer=True)
    refused = net.step(2, _envelope(3, 2, plain))
    assert [type(e.msg).__name__ for e in refused.send_after_sync] == ["Nack"]
    promised = net.step(2, _envelope(3, 2, handed))
    assert [type(e.msg).__name__ for e in promised.send_after_sync] == ["Promise"]


def test_no_batch_and_so_no_idle_time_stamp_while_handing_over() -> None:
    """The driver proposes idle log time only when a batch can form (`batching`): a stamp
    left in the queue would be forwarded to the new leader and move its log time ahead of
    the leases it granted (the simulator found it: seed 180)."""
    net = Net()
    net.elect(1)
    net.crash(3)
    replica = net.replicas[1]
    assert replica.batching
    assert net.call(1, lambda r: r.transfer_leadership(3)) is None
    assert not replica.batching
    for _ in range(net.config.election_ticks_max + 1):
        _tick_leader(net, 1)
        net.deliver_all()
    assert replica.status().is_leader and replica.batching, "abandoned: batches form again"


def test_a_transfer_is_refused_with_a_reason() -> None:
    net = Net()
    net.elect(1)
    assert "not the leader (node 1 leads)" in net.call(2, lambda r: r.transfer_leadership(3))
    assert "already leads" in net.call(1, lambda r: r.transfer_leadership(1))
    assert "not a voting member" in net.call(1, lambda r: r.transfer_leadership(9))
    assert net.call(1, lambda r: r.transfer_leadership(2)) is None
    assert "already being handed to node 2" in net.call(1, lambda r: r.transfer_leadership(3))


def test_a_handover_to_a_node_that_is_gone_is_abandoned_and_the_leader_goes_on() -> None:
    net = Net()
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.transfer_leadership(3)) is None
    net.call(1, lambda r: r.propose(put("held", 1)))
    for _ in range(net.config.election_ticks_max + 1):
        _tick_leader(net, 1)
        net.deliver_all()
    status = net.replicas[1].status()
    assert status.is_leader and status.transferring_to is None
    net.deliver_all()
    assert put("held", 1) in net.values(2), "held commands are proposed once it is abandoned"


def _envelope(src: int, dst: int, msg: object) -> Envelope:
    return Envelope(src, dst, msg)


def _ballot(net: Net, node: int) -> Ballot:
    lead = net.replicas[node].leading
    assert lead is not None, f"node {node} does not lead"
    return lead.ballot
