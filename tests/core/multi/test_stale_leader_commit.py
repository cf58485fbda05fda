"""A leader cut off with a minority, whose ballot was overtaken, learns the chosen values from a
peer of a later epoch (Stale, then Entries) and adopts that epoch. Its own proposals at the
slots it learned were never chosen: the commit point it tells its followers in its ballot must
not cover them, or a follower that accepted one takes it as chosen (simulator seed 5799 at 7
nodes, at eb6ec88: a stale leader's Commit on adoption made node 6 apply its own acceptances
of that leader's proposals at slots 77-79, where another leader had chosen other values)."""

from __future__ import annotations

from collections.abc import Callable

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.messages import Commit, Heartbeat
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope

from .harness import Net, put


def _within(group: set[int]) -> Callable[[Envelope], bool]:
    return lambda e: e.src in group and e.dst in group


def _told(envelope: Envelope, kind: type) -> bool:
    return envelope.src == 1 and envelope.dst == 2 and isinstance(envelope.msg, kind)


def _heartbeat(replica: Replica) -> None:
    lead = replica.leading
    assert lead is not None
    replica.heartbeat_round(lead)


def _settle_among(net: Net, group: set[int], ticks: int = 40) -> None:
    """Time passes for `group` alone; messages between them are delivered, others lost."""
    for _ in range(ticks):
        for node in sorted(group):
            net.call(node, lambda r: r.tick())
        for _ in range(50):
            for node in sorted(group):
                net.turn(node)
            net.drop(lambda e: not (e.src in group and e.dst in group))
            if not net.deliver(_within(group)):
                break


def _leaders(net: Net, group: set[int]) -> list[int]:
    return [n for n in sorted(group) if net.replicas[n].leading is not None]


def _overtaken_leader_learns_a_later_epoch(commit_type: type) -> Net:
    """Node 1 leads 5 nodes; cut off with node 2, it proposes a value only node 2 accepts;
    nodes 3, 4, 5 elect node 3, which chooses other values there and a change (epoch 1).
    Then node 1 hears from node 3 and catches up from it, one slot per Entries when
    `commit_type` is Heartbeat (node 1 heartbeats after each), the whole log at once when it
    is Commit (node 1 adopts epoch 1 and sends its Commit). Node 2 hears node 1's messages
    of that type, and nothing else."""
    config = EngineConfig(catchup_slots_max=1) if commit_type is Heartbeat else None
    net = Net(nodes=5, config=config)
    net.elect(1)
    net.call(1, lambda r: r.propose(put("k", "first", seq=1)))
    net.deliver_all()
    # Cut off with node 2: node 1's next proposal is accepted by node 2 alone.
    net.call(1, lambda r: r.propose(put("k", "lost", client="a", seq=1)))
    net.turn(1)
    net.drop(lambda e: e.dst not in (1, 2))
    net.deliver(_within({1, 2}))
    net.turn(1)
    net.drop(lambda e: True)
    # The majority elects node 3, which chooses another value at that slot, then removes 5.
    majority = {3, 4, 5}
    for node in majority:
        net.replicas[node].quiet_ticks = net.config.election_ticks_min
    _settle_among(net, majority)
    (leader,) = _leaders(net, majority)
    net.call(leader, lambda r: r.propose(put("k", "chosen", client="b", seq=1)))
    _settle_among(net, majority, 3)
    assert net.call(leader, lambda r: r.change_members((1, 2, 3, 4))) == ""
    _settle_among(net, majority, 3)
    assert net.replicas[leader].configuration.epoch == 1
    assert net.replicas[1].leading is not None  # node 1 still believes it leads
    # Node 1 hears from node 3 (its heartbeat is answered Stale) and catches up from it.
    net.call(1, _heartbeat)
    net.turn(1)
    net.drop(lambda e: not (e.src == 1 and e.dst == 3))
    for _ in range(20):
        if commit_type is Heartbeat and net.replicas[1].leading is not None:
            net.call(1, _heartbeat)
        net.turn(1)
        net.turn(3)
        # Node 2 hears only node 1's messages of `commit_type`, in node 1's old ballot.
        net.drop(lambda e: not (_within({1, 3})(e) or _told(e, commit_type)))
        if not net.deliver():
            break
    return net


def _agree(net: Net) -> None:
    """Every node applied at each slot what node 3 (the new leader) applied there (nothing,
    at a no-op slot), up to node 3's chosen point."""

    def at(node: int, slot: int) -> list[bytes]:
        return [a.payload for a in net.applied[node] if a.slot == slot and a.payload]

    upto = net.replicas[3].learner.chosen_upto
    for node in net.members:
        for slot in range(1, min(upto, net.replicas[node].learner.chosen_upto) + 1):
            assert at(node, slot) == at(3, slot), f"slot {slot}: node {node} applied another"


def test_an_overtaken_leader_adopting_an_epoch_commits_none_of_its_lost_proposals() -> None:
    net = _overtaken_leader_learns_a_later_epoch(Commit)
    assert net.replicas[1].configuration.epoch == 1
    _agree(net)
    assert put("k", "lost", client="a", seq=1) not in net.values(2)


def test_an_overtaken_leader_catching_up_heartbeats_none_of_its_lost_proposals() -> None:
    net = _overtaken_leader_learns_a_later_epoch(Heartbeat)
    _agree(net)
    assert put("k", "lost", client="a", seq=1) not in net.values(2)
