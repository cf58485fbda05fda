"""Membership change through the log (core/multi/epochs.py): the leader proposes a change only
with its pipeline drained, every node adopts the new epoch by applying it (or, jumping over
it with a snapshot, from a peer's Stale), a removed node stops campaigning, and a new leader
that finds a stop accepted by some re-proposes it and nothing above it."""

from __future__ import annotations

from paxosd.core.multi.ballots import epoch_of, first_round
from paxosd.core.multi.busy import Busy
from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.epochs import mark, removed_by
from paxosd.core.multi.messages import Accept, Accepted, PreVote, Stale
from paxosd.core.multi.reconfigure import in_batch
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Configured, Promised
from paxosd.core.types import Ballot, Envelope

from .harness import Net, put


def _adopted(net: Net, node: int) -> tuple[int, tuple[int, ...], tuple[int, ...], int]:
    c = net.replicas[node].configuration
    return c.epoch, c.voters, c.learners, c.first_slot


def _settle(net: Net, ticks: int = 40) -> None:
    """Let time pass: every live node ticks, and everything in flight is delivered."""
    for _ in range(ticks):
        for node in net.members:
            if node not in net.down:
                net.call(node, lambda r: r.tick())
        net.deliver_all()


def _leader(net: Net) -> int:
    leaders = [n for n in net.members if n not in net.down and net.replicas[n].leading]
    assert len(leaders) == 1, leaders
    return leaders[0]


def test_removing_a_voter_starts_an_epoch_every_node_adopts_after_the_stop() -> None:
    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.propose(put("before", 1, seq=1)))
    net.deliver_all()
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    # Held while the change waits: a command proposed now goes to the next epoch's leader.
    net.call(1, lambda r: r.propose(put("during", 2, seq=2)))
    net.deliver_all()
    stop = net.replicas[1].configuration.first_slot - 1
    # The change, accepted at the stop; then, on adoption, marked chosen in epoch 1's mark.
    change, marked = [r for r in net.disks[1] if isinstance(r, AcceptedRecord) and r.slot == stop]
    assert in_batch(change.batch) is not None and marked.batch == change.batch
    assert marked.ballot == mark(1)
    for node in (1, 2, 3):
        assert _adopted(net, node) == (1, (1, 2), (), stop + 1), node
        assert Configured(net.replicas[node].configuration) in net.disks[node]
    _settle(net)
    leader = _leader(net)
    assert leader in (1, 2)
    assert epoch_of(net.replicas[leader].leading.ballot) == 1  # type: ignore[union-attr]
    net.call(leader, lambda r: r.propose(put("after", 3, seq=3)))
    _settle(net, 5)
    for node in (1, 2, 3):  # node 3, removed, still learns what is chosen when it asks
        values = net.values(node)
        assert values.count(put("during", 2, seq=2)) <= 1
    for node in (1, 2):
        values = net.values(node)
        assert put("before", 1, seq=1) in values and put("after", 3, seq=3) in values
        assert values.count(put("during", 2, seq=2)) == 1
    # The removed node never campaigns again, however long it hears no leader.
    elections = net.replicas[3].elections
    _settle(net, 60)
    assert net.replicas[3].elections == elections
    assert net.replicas[3].leading is None


def test_a_node_of_an_earlier_epoch_is_answered_stale_and_catches_up() -> None:
    net = Net()
    net.elect(1)
    net.crash(3)  # misses the change
    assert net.call(1, lambda r: r.change_members((1, 2, 3), ())) != ""  # nothing to change
    assert net.call(1, lambda r: r.change_members((1, 3))) == ""
    net.deliver_all()
    assert _adopted(net, 1)[0] == 1 and _adopted(net, 2)[0] == 1
    net.down.discard(3)
    # Node 3 campaigns in epoch 0; the others answer Stale, and it catches up to the stop.
    net.call(3, lambda r: r._start_prevote())
    ready = net.turn(3)
    assert [e for e in ready.send_now + ready.send_after_sync if isinstance(e.msg, PreVote)]
    stale = []
    for envelope in list(net.inbox):
        net.inbox.remove(envelope)
        stale += [e for e in net.step(envelope.dst, envelope).send_after_sync
                  if isinstance(e.msg, Stale)]  # fmt: skip
    assert stale and stale[0].msg.configuration.epoch == 1
    net.deliver_all()
    _settle(net)
    assert _adopted(net, 3)[:2] == (1, (1, 3))
    leader = _leader(net)
    assert leader in (1, 3)


def test_a_change_is_refused_while_another_is_in_progress_and_for_bad_members() -> None:
    net = Net(nodes=5)
    net.elect(1)
    assert "learners first" in net.call(1, lambda r: r.change_members((1, 2, 3, 4, 5, 6)))
    assert "hand leadership" in net.call(1, lambda r: r.change_members((2, 3, 4)))
    assert "not the leader" in net.call(2, lambda r: r.change_members((1, 2, 3)))
    assert "valid" in net.call(1, lambda r: r.change_members(()))
    for node in (4, 5):
        net.crash(node)
    for _ in range(net.config.election_ticks_max + 1):  # the leader stops hearing 4 and 5
        net.call(1, lambda r: r.tick())
        net.deliver_all()
    refused = net.call(1, lambda r: r.change_members((1, 2, 4, 5)))
    assert "needs 3 voters answering, but only 2 do (1,2)" in refused, refused
    for node in (4, 5):
        net.restart(node)
    _settle(net)
    leader = _leader(net)
    assert net.call(leader, lambda r: r.change_members((1, 2, 3), (4,))) == ""
    # Refusals that pass by themselves are Busy: the tools ask again until their deadline.
    changing = net.call(leader, lambda r: r.change_members((1, 2, 3)))
    handing = net.call(leader, lambda r: r.transfer_leadership(2))
    assert "in progress" in changing and isinstance(changing, Busy), changing
    assert "in progress" in (handing or "") and isinstance(handing, Busy), handing
    follower = next(n for n in (1, 2, 3) if n != leader)
    assert isinstance(net.call(follower, lambda r: r.change_members((1, 2))), Busy)
    assert not isinstance(refused, Busy), "a quorum that cannot answer stays refused"


def test_a_learner_is_promoted_once_caught_up_and_then_votes() -> None:
    net = Net(config=EngineConfig(auto_promote=False))  # promoted by the operator
    net.elect(1)
    assert net.call(1, lambda r: r.change_members((1, 2), (3,))) == ""
    net.deliver_all()
    _settle(net)
    leader = _leader(net)
    for seq in range(1, 6):
        net.call(leader, lambda r, seq=seq: r.propose(put(f"k{seq}", seq, seq=seq)))
        net.deliver_all()
    _settle(net, 5)
    assert net.values(3) == net.values(leader)  # the learner has everything, no vote asked
    assert net.call(leader, lambda r: r.change_members((1, 2, 3))) == ""
    net.deliver_all()
    _settle(net)
    for node in (1, 2, 3):
        assert _adopted(net, node)[:3] == (2, (1, 2, 3), ())
    # Now node 3's vote counts: with 2 down, 1 and 3 choose.
    leader = _leader(net)
    other = ({1, 2} - {leader}).pop() if leader != 3 else 2
    net.crash(other)
    net.call(leader, lambda r: r.propose(put("late", 9, seq=9)))
    _settle(net, 5)
    assert put("late", 9, seq=9) in net.values(3)


def test_a_new_leader_re_proposes_a_stop_accepted_by_a_minority_and_nothing_above() -> None:
    net = Net(nodes=4)
    net.elect(1)
    assert net.call(1, lambda r: r.change_members((1, 2, 3))) == ""
    ready = net.turn(1)
    accepts = [e for e in ready.send_now + ready.send_after_sync if isinstance(e.msg, Accept)]
    assert accepts and in_batch(accepts[0].msg.batch) is not None
    stop = accepts[0].msg.slot
    # Only node 2 accepts the stop, and its answer is lost; then the leader dies.
    net.drop(lambda e: not (e.dst == 2 and isinstance(e.msg, Accept)))
    net.deliver(lambda e: e.dst == 2)
    net.drop(lambda e: isinstance(e.msg, Accepted))
    net.crash(1)
    net.elect(2)  # its phase 1 finds the stop at node 2: re-proposed, chosen, adopted
    assert epoch_of(net.replicas[2].leading.ballot) == 1  # type: ignore[union-attr]
    for node in (2, 3, 4):
        assert _adopted(net, node) == (1, (1, 2, 3), (), stop + 1), node
    net.restart(1)
    _settle(net)
    assert _adopted(net, 1) == (1, (1, 2, 3), (), stop + 1)


def test_a_restart_keeps_the_epoch_and_drops_older_acceptances_above_its_stop() -> None:
    net = Net()
    net.elect(1)
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    net.deliver_all()
    _settle(net)
    stop = net.replicas[1].configuration.first_slot - 1
    stray = (Ballot(1, 1), (b"never",))  # epoch 0's, above its stop: never chosen
    net.replicas[2].acceptor.entries[stop + 5] = stray
    net.crash(2)
    net.disks[2].append(AcceptedRecord(stop + 5, *stray))
    net.restart(2)
    replica = net.replicas[2]
    assert _adopted(net, 2) == (1, (1, 2), (), stop + 1)
    assert stop + 5 not in replica.acceptor.entries


def test_a_node_that_jumps_over_the_stop_with_a_snapshot_adopts_the_epoch() -> None:
    config = EngineConfig(snapshot_every_slots=4, catchup_slots_max=2, auto_promote=False)
    net = Net(config=config)
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.change_members((1, 2, 3), ())) != ""
    assert net.call(1, lambda r: r.change_members((1, 2), (3,))) == ""
    net.deliver_all()
    _settle(net)
    leader = _leader(net)
    for seq in range(1, 12):
        net.call(leader, lambda r, seq=seq: r.propose(put(f"k{seq}", seq, seq=seq)))
        net.deliver_all()
    assert net.replicas[leader].learner.snapshot_slot > net.replicas[1].configuration.first_slot
    net.restart(3)
    net.call(3, lambda r: r._start_prevote())
    _settle(net)
    assert _adopted(net, 3)[:3] == (1, (1, 2), (3,))
    assert net.replicas[3].learner.snapshot_slot >= net.replicas[3].configuration.first_slot
    assert net.replicas[3].learner.applied == net.replicas[leader].learner.applied


def test_a_caught_up_learner_is_promoted_by_the_leader_and_one_that_is_down_is_not() -> None:
    net = Net()
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.change_members((1, 2), (3,))) == ""
    net.deliver_all()
    _settle(net)
    leader = _leader(net)
    assert _adopted(net, leader)[:3] == (1, (1, 2), (3,)), "node 3 is down: not promoted"
    net.restart(3)
    _settle(net, 60)
    for node in (1, 2, 3):
        assert _adopted(net, node)[:3] == (2, (1, 2, 3), ()), node


def test_a_peer_left_promising_a_later_epochs_mark_stops_no_election() -> None:
    """A torn adoption (the mark's promise durable, the epoch's record lost) leaves a node
    that can promise nothing of its epoch: its Nacks name no leader (no write is forwarded
    to node 0) and stop no candidate, which wins with the others."""
    net = Net(nodes=5)
    net.replicas[1].acceptor.promised = mark(1)
    net.call(2, lambda r: r.start_election())
    net.deliver_all()
    assert net.replicas[2].leading is not None
    assert [n for n in net.members if net.replicas[n].leader_hint == 0] == []


def test_a_node_told_of_a_later_epoch_that_leaves_it_out_knows_it_was_removed() -> None:
    """Removed while it lagged, a node cannot reach the epoch's start (its members no longer
    send it the log): the configuration a peer's Stale names tells it."""
    net = Net()
    replica = net.replicas[3]
    assert removed_by(replica) is None
    later = Configuration((1, 2), (), 1, 50)
    net.step(3, Envelope(1, 3, Stale(configuration=later)))
    assert replica.configuration.epoch == 0
    assert removed_by(replica) == later


def test_a_learner_removed_while_it_was_down_asks_a_peer_and_learns_it() -> None:
    """A learner sends nothing a Stale would answer, and no leader sends a removed node the
    log: once it has heard no leader for an election timeout it asks a peer for what it
    missed, and applying its own removal, it knows it (simulator seed 1815 at 3 nodes)."""
    net = Net(config=EngineConfig(auto_promote=False))
    net.elect(1)
    assert net.call(1, lambda r: r.change_members((1, 2), (3,))) == ""
    net.deliver_all()
    _settle(net)
    assert _adopted(net, 3)[:3] == (1, (1, 2), (3,))
    net.crash(3)
    leader = _leader(net)
    assert net.call(leader, lambda r: r.change_members((1, 2))) == ""
    net.deliver_all()
    _settle(net)
    net.restart(3)
    assert removed_by(net.replicas[3]) is None, "it does not know yet"
    _settle(net, net.config.election_ticks_max * 2 + 2)
    assert _adopted(net, 3)[:3] == (2, (1, 2), ())
    assert removed_by(net.replicas[3]) is not None


def test_a_voter_removed_while_down_that_saw_a_later_ballot_asks_a_peer_and_learns_it() -> None:
    """A voter that has seen a later epoch's ballot may not campaign (its ballots stay in its
    own epoch), so it sends no PreVote a Stale would answer; removed by that epoch, it is sent
    no log either. Once its election timeout passes it asks a peer for what it missed, and
    applying its removal, it knows it (simulator seeds 20716 at 5 nodes, 20104 at 7: its own
    promise of the later epoch's mark, whose Configured record a torn write lost)."""
    net = Net(config=EngineConfig(auto_promote=False))
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    net.deliver_all()
    _settle(net)
    later = net.replicas[1].configuration
    assert later.epoch == 1
    net.restart(3)
    assert _adopted(net, 3)[0] == 0
    # It saw a ballot of the later epoch (the catch-up that started was lost).
    net.call(3, lambda r: r.see(Ballot(first_round(later.epoch) + 1, 1)))
    _settle(net, net.config.election_ticks_max * 2 + 2)
    assert _adopted(net, 3)[:3] == (1, (1, 2), ())
    assert removed_by(net.replicas[3]) is not None


def test_a_voter_left_promising_its_removals_mark_asks_a_peer_and_learns_it() -> None:
    """A torn adoption of the epoch that removed it leaves a voter of the old epoch promising
    the new epoch's mark: it may not campaign, sends nothing a Stale would answer, and is
    sent no log. Once an election timeout has passed it asks a peer for what it lacks, and
    learns its removal (simulator seed 20733 at 3 nodes: its watchers and clients stayed on
    a node that never moved)."""
    net = Net()
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    net.deliver_all()
    _settle(net)
    assert _adopted(net, _leader(net))[:2] == (1, (1, 2))
    net.disks[3].append(Promised(mark(1)))  # the epoch's record torn away
    net.restart(3)
    replica = net.replicas[3]
    assert replica.configuration.epoch == 0 and replica.acceptor.promised == mark(1)
    assert removed_by(replica) is None, "it does not know yet"
    _settle(net, net.config.election_ticks_max * 2 + 2)
    assert removed_by(replica) is not None


def _leader_adopting_with_a_torn_write(cut: int) -> tuple[Net, int]:
    """Three voters, node 3 down: leader 1 chooses the change that removes node 3 with node
    2's vote, learns it first, and crashes in the sync of its adoption, its store keeping only
    the first `cut` records of that write (and nothing it sent in that turn leaving it).
    Returns the net and how many records the adoption wrote."""
    net = Net()
    net.elect(1)
    net.crash(3)
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    net.turn(1)
    before = len(net.disks[1])
    while net.replicas[1].configuration.epoch == 0:
        envelope = net.inbox.pop(0)
        if envelope.dst not in net.down:
            before = len(net.disks[1])
            net.step(envelope.dst, envelope)
    assert net.replicas[2].configuration.epoch == 0, "node 2 has not learned the stop"
    disk = net.disks[1]
    configured = max(i for i, r in enumerate(disk) if isinstance(r, Configured))
    marks = [r for r in disk[before:] if isinstance(r, AcceptedRecord) and r.ballot == mark(1)]
    assert marks, "the adoption marks the values chosen up to the stop"
    first = disk.index(marks[0]) - sum(isinstance(r, Promised) for r in disk[before:configured])
    written = configured + 1 - first
    del disk[first + cut :]
    net.inbox = [e for e in net.inbox if e.src != 1]
    net.crash(1)
    net.restart(1)
    return net, written


def test_a_leader_whose_adoption_write_tore_recovers_the_stop_with_the_voter_that_took_it() -> None:
    """The leader learns the stop is chosen before anyone else, and a crash tears its adoption
    write: whatever prefix its store kept, it comes back in the old epoch as the voter it was
    (a store that kept the new epoch's mark as a promise could promise nothing there, and the
    other voter, which took the stop but never heard it was chosen, could form no quorum
    without it: simulator seed 30326 at 3 nodes). The two recover the stop and adopt."""
    _, written = _leader_adopting_with_a_torn_write(0)
    for cut in range(written):
        net, _ = _leader_adopting_with_a_torn_write(cut)
        assert net.replicas[1].configuration.epoch == 0, cut
        _settle(net, net.config.election_ticks_max * 4)
        for node in (1, 2):
            assert _adopted(net, node)[:3] == (1, (1, 2), ()), (cut, node)
        assert _leader(net) in (1, 2), cut
