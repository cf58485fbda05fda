"""The simulator's membership fault family, and what it checks (docs/engine.md, "Membership
change: epochs").

Theory of operation. The `membership` fault has an operator change the cluster's members
through the leader, now and then, among the simulated nodes: remove a voter (the leader
too: it hands leadership over first), demote a voter to a learner, add a removed node back
as a learner, promote a learner. Some changes are asked twice at once (two operators: the
second must be refused), and some are followed by a crash of the leader, either a few
milliseconds after it was asked (between proposing the change and its being chosen) or
just as the leader adopts the new epoch (between chosen and the new epoch's election). A
removed node stays up: it must learn that it was removed and stop campaigning. Some nodes
are cut off from the others as the change is asked, for a while: a voter being removed
(it misses the change, times out, and campaigns in the old epoch with ever higher ballots
until, reconnected, it is answered with the new epoch and learns it was removed) and a
learner being added (it must catch up once reconnected).

The checks do not trust the engine's account of what was chosen. An `Observer` watches the
simulated disks: every acceptance (slot, ballot, batch) once its node's sync has made it
durable (the leader's own included: its vote counts only once synced). A value is chosen in
the epoch of its ballot once a quorum of that epoch's voters durably accepted it. With the
epochs the nodes adopted (from their `epoch_adopted` notes), that gives the two membership
checks of check/epochs.py: an epoch chooses nothing above its stop, and every node agrees on
each epoch's members and first slot, which follows the stop. One check is added: at most one
value is chosen per slot, across ballots and epochs.

A run with this fault leaves out the lost-disk faults (`disk-loss`, `reinit`): once the
membership has changed a lost store is not rebuilt (it must rejoin under a new identity, which
the simulator does not model yet), so such a node would stay down for good.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from paxosd.check.epochs import Adopted, Chosen, check_members, check_stops
from paxosd.core.multi.ballots import epoch_of
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.epochs import is_mark
from paxosd.core.multi.ready import Note
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot, NodeId

if TYPE_CHECKING:
    from paxosd.sim.cluster import Cluster

FAULT = "membership"
DESCRIPTION = (
    "an operator removes, demotes, adds back and promotes members (the leader too), "
    "sometimes twice at once, sometimes crashing the leader mid-change"
)
# Faults a run with membership changes leaves out (see the module docstring).
EXCLUDES = frozenset({"disk-loss", "reinit"})


@dataclass(slots=True)
class Observer:
    """What was chosen, per slot and ballot, as the wire shows it; what each node adopted."""

    founding: Configuration
    proposed: dict[tuple[int, Ballot], Batch] = field(default_factory=dict)
    votes: dict[tuple[int, Ballot], set[NodeId]] = field(default_factory=dict)
    adopted: list[Adopted] = field(default_factory=list)
    # An armed crash: the leader that asked for a change, to crash when it adopts the epoch,
    # and for how long.
    crash_on_adopt: tuple[NodeId, float] | None = None

    def durable(self, node: NodeId, votes: list[AcceptedRecord]) -> None:
        """`node` made these acceptances durable."""
        for vote in votes:
            if is_mark(vote.ballot):
                continue  # a value chosen before, marked as such at an adoption: no vote
            key = (vote.slot, vote.ballot)
            self.proposed.setdefault(key, vote.batch)
            self.votes.setdefault(key, set()).add(node)

    def noted(self, note: Note) -> None:
        fields = dict(note.fields)
        configuration = Configuration(
            tuple(fields["voters"]),
            tuple(fields["learners"]),
            int(fields["epoch"]),
            int(fields["first_slot"]),
        )
        node, epoch = int(fields["node"]), configuration.epoch
        self.adopted.append(Adopted(node, epoch, configuration, configuration.first_slot))

    def configurations(self) -> dict[int, Configuration]:
        """Each epoch's members, as the first node to adopt it had them."""
        known = {0: self.founding}
        for record in self.adopted:
            known.setdefault(record.epoch, record.configuration)
        return known

    def chosen(self) -> list[Chosen]:
        """Every (slot, ballot) a quorum of its epoch's voters voted for."""
        configurations = self.configurations()
        out = []
        for (slot, ballot), voters in self.votes.items():
            batch = self.proposed.get((slot, ballot))
            configuration = configurations.get(epoch_of(ballot))
            if batch is None or configuration is None:
                continue
            if configuration.quorum.is_phase2_quorum(voters):
                out.append(Chosen(ballot.node, slot, epoch_of(ballot), batch))
        return out

    def problems(self) -> list[str]:
        chosen = self.chosen()
        lines = []
        by_slot: dict[int, Chosen] = {}
        for record in sorted(chosen, key=lambda r: (r.slot, r.epoch)):
            first = by_slot.setdefault(record.slot, record)
            if first.batch != record.batch:
                lines.append(
                    f"membership: two values chosen at slot {record.slot} (in epochs "
                    f"{first.epoch} and {record.epoch}, by the ballots of nodes {first.node} "
                    f"and {record.node})"
                )
                break
        for verdict in (check_stops(chosen), check_members(self.adopted, chosen)):
            if verdict.status != "holds":
                lines.append(f"membership: {verdict.property}: {verdict.detail}")
        return lines


def watch(cluster: Cluster) -> None:
    """Observe this run's acceptances and epochs (every store's, present and future)."""
    observer = cluster.membership = Observer(cluster.configuration)
    for node, disk in cluster.disks.items():
        disk.on_durable_votes = partial(observer.durable, node)


def schedule(cluster: Cluster, generator: random.Random) -> None:
    """An operator's changes at random moments of the safety phase."""
    horizon = cluster.spec.safety_ms
    for _ in range(generator.randint(2, 6)):
        at = generator.uniform(100, horizon * 0.85)
        plan = Change(pick=generator.random(), twice=generator.random() < 0.2,
                      crash=generator.random(), crash_ms=generator.uniform(0, 15),
                      down_ms=generator.uniform(50, 400), cut=generator.random() < 0.3,
                      cut_ms=generator.uniform(100, 900))  # fmt: skip
        cluster.at(at, partial(change, cluster, plan))


@dataclass(frozen=True, slots=True)
class Change:
    pick: float  # which change, and of which member
    twice: bool  # a second operator asks for one at the same moment
    crash: float  # < 0.2: crash the leader mid-change; < 0.35: as it adopts the new epoch
    crash_ms: float
    down_ms: float
    cut: bool  # the node removed or added is cut off from the others for a while
    cut_ms: float


def change(cluster: Cluster, plan: Change, retried: bool = False) -> None:
    leader = cluster.leader()
    if leader is None:
        return
    node = cluster.nodes[leader]
    if node is None:
        return
    current = node.replica.configuration
    voters, learners = list(current.voters), list(current.learners)
    removed = [n for n in cluster.members if not current.is_member(n)]
    pick = plan.pick
    cut_off: NodeId | None = None  # who is cut off if the plan says so
    if learners and pick < 0.5:
        promoted = learners[int(pick * 2 * len(learners))]
        target = (voters + [promoted], [n for n in learners if n != promoted])
    elif removed and pick < 0.75:
        target = (voters, learners + [removed[0]])
        cut_off = removed[0]
    elif len(voters) > 2:
        victim = voters[int(pick * len(voters)) % len(voters)]
        if victim == leader:
            # Removing the leader: it hands leadership over first, then the next leader
            # is asked (once).
            others = [v for v in voters if v != leader and cluster.nodes[v] is not None]
            if not others or retried:
                return
            if node.driver.transfer_leadership(others[0]) is None:
                cluster.count("membership_leader_handover")
                cluster.at(cluster.now + 300.0, partial(change, cluster, plan, True))
            return
        rest = [v for v in voters if v != victim]
        demote = int(pick * 1000) % 2 == 0
        target = (rest, learners + [victim] if demote else learners)
        cut_off = victim
    else:
        return
    refused = node.driver.change_members(*target)
    if refused:
        cluster.count("membership_refused")
        return
    cluster.count("membership_change")
    if plan.cut and cut_off is not None:
        others = [n for n in cluster.members if n != cut_off]
        cluster.cut_links({cut_off}, others)
        cluster.count("membership_cut_off")
        cluster.at(cluster.now + plan.cut_ms, partial(cluster.mend_links, {cut_off}, others))
    if plan.twice:
        again = node.driver.change_members(current.voters, current.learners)
        cluster.count("membership_second_refused" if again else "membership_second_taken")
    observer = cluster.membership
    assert observer is not None
    if plan.crash < 0.2:
        at = cluster.now + plan.crash_ms
        cluster.at(at, partial(_crash_leader, cluster, leader, "membership_crash_proposing"))
        cluster.at(at + plan.down_ms, partial(cluster.restart, leader))
    elif plan.crash < 0.35:
        observer.crash_on_adopt = (leader, plan.down_ms)


def adopted(cluster: Cluster, note: Note) -> None:
    """A node adopted an epoch: record it, and strike the crash armed for that moment."""
    observer = cluster.membership
    if observer is None:
        return
    observer.noted(note)
    armed = observer.crash_on_adopt
    node = int(dict(note.fields)["node"])
    if armed is not None and armed[0] == node:
        observer.crash_on_adopt = None
        crash = partial(_crash_leader, cluster, node, "membership_crash_adopting")
        cluster.at(cluster.now, crash)
        cluster.at(cluster.now + armed[1], partial(cluster.restart, node))


def _crash_leader(cluster: Cluster, node: NodeId, fault: str) -> None:
    if cluster.nodes[node] is not None:
        cluster.crash(node)
        cluster.count(fault)


def removed(cluster: Cluster, node: NodeId) -> bool:
    """Whether `node` is up and knows that it is no member of the cluster any more."""
    sim = cluster.nodes[node]
    return sim is not None and sim.driver.removed() is not None
