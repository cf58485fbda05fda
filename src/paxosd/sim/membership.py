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

Identities and replacement. Every simulated store has an incarnation id (drawn anew with each
store a node is given), and delivery applies the rule of the peer handshake: a message is
dropped when its receiver's configuration `admits` refuses the sender's store (a member that
joined through the log, recorded with another incarnation), and counted. A member added
through the log is recorded with its store's identity. The operator also replaces members:
(a) correctly, as docs/operations.md says: remove the node (the leader hands over first),
wait until the removal is adopted, wipe its disk, have it added back as a learner with its
new identity, and make its store as `paxosd node --join` does (with the configuration that
added it, and the new incarnation) and start it (the leader promotes it once caught up); (b)
carelessly, half the time: a voter that joined through the log is wiped at the worst moment
(as `disk-loss` strikes: the voters that chose with it down, the ones that fell behind up)
and started again under its id, on a store made from the configuration in which it votes.
Its peers must refuse it: its old store's votes are gone, and a quorum counting its new one
could choose other values for the slots they helped choose. The operator then replaces it
as in (a). The observer counts a vote only from the store a member was recorded with.

The checks do not trust the engine's account of what was chosen. An `Observer` watches the
simulated disks: every acceptance (slot, ballot, batch) once its node's sync has made it
durable (the leader's own included: its vote counts only once synced). A value is chosen in
the epoch of its ballot once a quorum of that epoch's voters durably accepted it. With the
epochs the nodes adopted (from their `epoch_adopted` notes), that gives the two membership
checks of check/epochs.py: an epoch chooses nothing above its stop, and every node agrees on
each epoch's members and first slot, which follows the stop. One check is added: at most one
value is chosen per slot, across ballots and epochs.

A lost store, in a run whose membership changes. The lost-store faults (`disk-loss`,
`reinit`) strike as in any run, and the new store has a new incarnation. What is honest
depends on whose store it was, and the simulator does what the node does: a founding
member's store is rebuilt from every peer (`--reinitialize`), which works while the
cluster is in the epoch the store was made for, and is stranded once the node learns of a
later one (a peer answers it with Stale; core/multi/epochs.py): it never votes again. A
member that joined through the log is refused by its peers (its incarnation is not the
recorded one), so it votes nothing either. Either way the node is stuck, and the operator,
who looks every `stuck_ms`, replaces it as in (a). Two limits keep this a run a cluster can
survive: a store is not lost while another node is stuck or being replaced, nor that of a
voter of fewer than three (the others could not choose its removal; such a cluster is lost
and comes back only from a backup), and the operator shrinks no configuration meanwhile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from paxosd.check.epochs import Adopted, Chosen, check_members, check_stops
from paxosd.core.multi.ballots import epoch_of
from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.epochs import is_mark
from paxosd.core.multi.ready import Note
from paxosd.core.multi.reconfigure import in_batch
from paxosd.core.multi.records import Accepted as AcceptedRecord
from paxosd.core.multi.records import Batch
from paxosd.core.types import Ballot, NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica
    from paxosd.sim.cluster import Cluster

FAULT = "membership"
DESCRIPTION = (
    "an operator removes, demotes, adds back and promotes members (the leader too), "
    "sometimes twice at once, sometimes crashing the leader mid-change"
)
# The faults that lose a store: in a run with membership changes, the operator replaces the
# node whose lost store cannot come back (see the module docstring).
LOST_STORE_FAULTS = frozenset({"disk-loss", "reinit"})


@dataclass(slots=True)
class Observer:
    """What was chosen, per slot and ballot, as the wire shows it; what each node adopted."""

    founding: Configuration
    proposed: dict[tuple[int, Ballot], Batch] = field(default_factory=dict)
    # Who voted, as (node, incarnation of the store that holds the vote).
    votes: dict[tuple[int, Ballot], set[tuple[NodeId, int]]] = field(default_factory=dict)
    adopted: list[Adopted] = field(default_factory=list)
    # An armed crash: the leader that asked for a change, to crash when it adopts the epoch,
    # and for how long.
    crash_on_adopt: tuple[NodeId, float] | None = None
    # Nodes an operator is replacing (or wiped carelessly): no other change picks them.
    replacing: set[NodeId] = field(default_factory=set)
    # The identities (node, incarnation) a peer refused at least once; those a careless
    # replacement started.
    refused: set[tuple[NodeId, int]] = field(default_factory=set)
    careless: set[tuple[NodeId, int]] = field(default_factory=set)

    def durable(self, node: NodeId, incarnation: int, votes: list[AcceptedRecord]) -> None:
        """`node`, on its store of `incarnation`, made these acceptances durable."""
        for vote in votes:
            if is_mark(vote.ballot):
                continue  # a value chosen before, marked as such at an adoption: no vote
            key = (vote.slot, vote.ballot)
            self.proposed.setdefault(key, vote.batch)
            self.votes.setdefault(key, set()).add((node, incarnation))

    def noted(self, note: Note) -> None:
        fields = dict(note.fields)
        configuration = Configuration(
            tuple(fields["voters"]),
            tuple(fields["learners"]),
            int(fields["epoch"]),
            int(fields["first_slot"]),
            tuple(Joined(*entry) for entry in fields["joined"]),
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
        """Every (slot, ballot) a quorum of its epoch's voters voted for. A vote counts only
        from the store the member was recorded with: a node's new store (its old one lost)
        is not the member that joined, whatever the engine lets it do."""
        configurations = self.configurations()
        out = []
        for (slot, ballot), identities in self.votes.items():
            batch = self.proposed.get((slot, ballot))
            configuration = configurations.get(epoch_of(ballot))
            if batch is None or configuration is None:
                continue
            voters = {node for node, incarnation in identities
                      if _recorded(configuration, node, incarnation)}  # fmt: skip
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


def _recorded(configuration: Configuration, node: NodeId, incarnation: int) -> bool:
    """Whether `configuration` names the store of `incarnation` as `node`'s (a member with no
    recorded identity is a founding one, whose lost store is rebuilt before it votes)."""
    for joined in configuration.joined:
        if joined.node == node:
            return joined.incarnation == incarnation
    return True


def watch(cluster: Cluster) -> None:
    """Observe this run's acceptances and epochs (every store's, present and future)."""
    observer = cluster.membership = Observer(cluster.configuration)
    for node, disk in cluster.disks.items():
        disk.on_durable_votes = partial(observer.durable, node, cluster.incarnations[node])


def refused(cluster: Cluster, node: NodeId, incarnation: int) -> None:
    """A peer refused a message of `node`'s store of `incarnation` (not the recorded one)."""
    cluster.count("refused_by_incarnation")
    observer = cluster.membership
    if observer is not None and (node, incarnation) not in observer.refused:
        observer.refused.add((node, incarnation))
        cluster.count("incarnations_refused")
        if (node, incarnation) in observer.careless:
            cluster.count("membership_careless_refused")


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
    # Replacements draw from a generator of their own: the changes above kept their draws.
    own = random.Random(f"{cluster.seed}/{FAULT}/replace")
    for _ in range(own.randint(1, 2)):
        at = own.uniform(100, horizon * 0.4)
        replacement = Replace(pick=own.random(), careless=own.random() < 0.5,
                              gap_ms=own.uniform(100, 300), back_ms=own.uniform(10, 50),
                              holders_back_ms=own.uniform(300, 600),
                              fix_ms=own.uniform(50, 200))  # fmt: skip
        cluster.at(at, partial(replace_member, cluster, replacement))
    if cluster.active_faults & LOST_STORE_FAULTS:
        cluster.at(stuck_ms, partial(replace_stuck, cluster))


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
    observer = cluster.membership
    assert observer is not None
    busy = observer.replacing  # an operator is replacing these: left alone
    removed = [n for n in cluster.members if not current.is_member(n) and n not in busy]
    pick = plan.pick
    cut_off: NodeId | None = None  # who is cut off if the plan says so
    joining: Joined | None = None
    if learners and pick < 0.5:
        promoted = learners[int(pick * 2 * len(learners))]
        target = (voters + [promoted], [n for n in learners if n != promoted])
    elif removed and pick < 0.75:
        # Added back with the identity of the store it has (a member that joins through the
        # log is recorded with it).
        target = (voters, learners + [removed[0]])
        joining = Joined(removed[0], cluster.incarnations[removed[0]], contact(removed[0]))
        cut_off = removed[0]
    elif len(voters) > 2:
        victim = voters[int(pick * len(voters)) % len(voters)]
        if victim in busy or not may_shrink(cluster, [v for v in voters if v != victim]):
            cluster.count("membership_shrink_deferred")
            return
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
    refused = node.driver.change_members(*target, joining)
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
    """Whether `node` is up and serves no client: it knows that it is no member of the
    cluster any more, or it is stuck (its peers refuse its store's identity, or its rebuild
    is stranded): a client of it goes to another node, as from a node cut off."""
    sim = cluster.nodes[node]
    if sim is None:
        return False
    return is_stuck(cluster, node) or sim.driver.removed() is not None


# -- replacing a member whose machine is gone ----------------------------------------------------


def contact(node: NodeId) -> str:
    """How a joined member is reached (opaque to the engine; the runtime's addresses)."""
    return f"sim-node-{node}"


retry_ms = 50.0  # an operator waiting for the right moment looks again this often


@dataclass(frozen=True, slots=True)
class Replace:
    pick: float  # which member
    # (b), the careless operator: a voter that joined through the log is wiped and started
    # again under its id, its new store made from the configuration in which it votes.
    careless: bool
    gap_ms: float  # (b): how long the laggers are down before the wipe ...
    back_ms: float  # ... from the wipe to the restart of the wiped node and the laggers ...
    holders_back_ms: float  # ... from then to the holders' restart ...
    fix_ms: float  # ... and from then to the operator's replacing the node properly
    prepared: bool = False  # (b): a member was replaced by (a) first, to join through the log


def replace_member(cluster: Cluster, plan: Replace) -> None:
    """A replacement, when every node is up under a leader (for (b), once a voter that
    joined through the log exists): looked for until 55 % of the safety phase (so that the
    operator is done with it, most of the time, before the safety phase ends)."""
    deadline = cluster.spec.safety_ms * 0.55
    observer = cluster.membership
    leader = cluster.leader()
    sim = cluster.nodes[leader] if leader is not None else None
    ready = (
        observer is not None
        and sim is not None
        and not observer.replacing
        and not unsettled(cluster)
        and not changing(sim.replica)
        and not cluster.held_down
        and all(cluster.nodes[n] is not None for n in cluster.members)
    )
    if sim is not None and ready:
        current = sim.replica.configuration
        joined = [j.node for j in current.joined if current.is_voter(j.node)]
        if plan.careless and joined and len(current.voters) >= 3:
            _careless(cluster, plan, current, joined[int(plan.pick * len(joined))])
            return
        if not plan.careless or not (plan.prepared or current.joined):
            # (a); for (b), while no member joined through the log, (a) makes one first
            # (the leader promotes it once caught up). As the other changes do, it takes a
            # voter only while two would remain (a lone voter chooses a change in the turn
            # it proposes it, and adopts it before that turn's sync: a crash in the sync
            # undoes an adoption the observer already saw).
            members = [m for m in current.members
                       if len(current.voters) > 2 or not current.is_voter(m)]  # fmt: skip
            if members:
                Replacement(cluster, members[int(plan.pick * len(members))]).step()
                if plan.careless:
                    prepared = partial(replace_member, cluster, replace(plan, prepared=True))
                    cluster.at(cluster.now + retry_ms, prepared)
                return
    if cluster.now < deadline:
        cluster.at(cluster.now + retry_ms, partial(replace_member, cluster, plan))


@dataclass(slots=True)
class Replacement:
    """(a), the correct operator, as `paxosd node --join` does it (cli/join.py): remove the
    node (the leader hands over first) and wait until the removal is adopted; stop it and
    wipe its disk (its new incarnation id is drawn); ask the leader to add it as a learner
    with its new identity, and once that is adopted, make its store with the configuration
    that added it and start it (the leader promotes it once it has caught up). Each step is
    asked again until it is done (a change in progress, a leader crashed meanwhile), until
    the safety phase ends; a node removed by then is wiped and gets its store with the
    latest configuration, added or not (it then learns that it is no member)."""

    cluster: Cluster
    node: NodeId
    incarnation: int = 0  # the new store's, once the disk is wiped

    def __post_init__(self) -> None:
        observer = self.cluster.membership
        assert observer is not None
        observer.replacing.add(self.node)

    def step(self) -> None:
        cluster, node = self.cluster, self.node
        leader = cluster.leader()
        sim = cluster.nodes[leader] if leader is not None else None
        if cluster.now >= cluster.spec.safety_ms - stuck_ms:
            latest = self._latest()
            if not self.incarnation and not latest.is_member(node):
                self._wipe()  # removed already: the operator finishes with the store
            if self.incarnation:
                self._start(latest)
            self._done("membership_replace_unfinished")
            return
        later = partial(self.step)
        if sim is None or leader is None:
            cluster.at(cluster.now + retry_ms, later)
            return
        current = sim.replica.configuration
        if not self.incarnation:
            if not current.is_member(node):
                self._wipe()
            elif leader == node:
                others = [v for v in current.voters if v != node and cluster.nodes[v] is not None]
                if others and sim.driver.transfer_leadership(others[0]) is None:
                    cluster.count("membership_leader_handover")
            else:
                rest = [v for v in current.voters if v != node]
                sim.driver.change_members(rest, [n for n in current.learners if n != node])
            cluster.at(cluster.now + retry_ms, later)
            return
        if current.is_member(node):
            self._start(current)
            self._done("membership_replace")
            return
        joining = Joined(node, self.incarnation, contact(node))
        sim.driver.change_members(current.voters, (*current.learners, node), joining)
        cluster.at(cluster.now + retry_ms, later)

    def _wipe(self) -> None:
        """Stopped, its store gone: until the new one is made, no start finds one."""
        cluster, node = self.cluster, self.node
        cluster.crash(node)
        cluster.move_store_aside(node)
        self.incarnation = cluster.draw_incarnation()

    def _start(self, configuration: Configuration) -> None:
        cluster, node = self.cluster, self.node
        cluster.join_store(node, configuration, self.incarnation)
        cluster.restart(node)

    def _latest(self) -> Configuration:
        """The latest configuration a node that is up is in."""
        up = [sim.replica.configuration for sim in self.cluster.nodes.values() if sim]
        return max(up, key=lambda c: c.epoch, default=self.cluster.configuration)

    def _done(self, outcome: str) -> None:
        observer = self.cluster.membership
        assert observer is not None
        observer.replacing.discard(self.node)
        self.cluster.count(outcome)


def _careless(cluster: Cluster, plan: Replace, current: Configuration, victim: NodeId) -> None:
    """(b), at the worst moment: some voters fall behind (down), the victim and the others go
    on choosing; then those go down, and the victim's disk is wiped and it comes back with
    the laggers, which together would make a quorum, on a store made from the configuration
    in which it votes, under the same id and a new incarnation. Its peers must refuse it: it
    holds none of the votes its old store gave, and a quorum counting it could choose other
    values for slots its old store helped choose. Later the operator replaces it properly."""
    observer = cluster.membership
    assert observer is not None
    observer.replacing.add(victim)
    others = [v for v in current.voters if v != victim]
    turn = int(plan.pick * 1000) % len(others)
    others = others[turn:] + others[:turn]
    holders = others[: (len(current.voters) - 1) // 2]
    laggers = others[len(holders) :]
    for node in laggers:
        cluster.crash(node)
        cluster.held_down.add(node)
    wipe = partial(_careless_wipe, cluster, plan, victim, holders, laggers)
    cluster.at(cluster.now + plan.gap_ms, wipe)


def _careless_wipe(
    cluster: Cluster,
    plan: Replace,
    victim: NodeId,
    holders: list[NodeId],
    laggers: list[NodeId],
) -> None:
    observer = cluster.membership
    assert observer is not None
    sim = cluster.nodes[victim]
    for node in holders:
        cluster.crash(node)
        cluster.held_down.add(node)
    if sim is not None:  # (if it crashed meanwhile, there is nothing to wipe carelessly)
        configuration = sim.replica.configuration  # in which it votes
        cluster.crash(victim)
        cluster.join_store(victim, configuration)
        cluster.count("membership_careless_replace")
        observer.careless.add((victim, cluster.incarnations[victim]))
    back = cluster.now + plan.back_ms
    for node in (*laggers, victim):
        cluster.at(back, partial(cluster.restart, node, True))
    holders_back = back + plan.holders_back_ms
    for node in holders:
        cluster.at(holders_back, partial(cluster.restart, node, True))
    if sim is None:
        observer.replacing.discard(victim)
        return
    fix = Replacement(cluster, victim)
    cluster.at(holders_back + plan.fix_ms, fix.step)


# -- a lost store, in a run whose membership changes ------------------------------------------

stuck_ms = 300.0  # how often the operator looks for a node that cannot come back


def is_stuck(cluster: Cluster, node: NodeId) -> bool:
    """Whether `node` has a store that can never vote again: its peers refuse that store's
    identity, or it is up rebuilding a lost store and has learned of an epoch later than the
    one the store was made for (its rebuild is stranded: core/multi/epochs.py)."""
    sim = cluster.nodes[node]
    observer = cluster.membership
    if observer is not None and (node, cluster.incarnations[node]) in observer.refused:
        return True  # (up or down: it is the store that is refused)
    rebuilding = sim.replica.rebuilding if sim is not None else None
    return rebuilding is not None and rebuilding.stranded


def stuck(cluster: Cluster) -> list[NodeId]:
    """The nodes that are stuck, or whose replacement is under way."""
    observer = cluster.membership
    busy = observer.replacing if observer is not None else set()
    return [n for n in cluster.members if n in busy or is_stuck(cluster, n)]


def changing(replica: Replica) -> bool:
    """Whether this leader has a membership change in flight: the configuration it has is
    about to end, so a replacement planned on it is not (a careless wipe planned among three
    voters struck one of two, and the cluster could never choose again: seed 95)."""
    lead = replica.leading
    return lead is not None and (lead.change is not None or lead.stop is not None)


def unsettled(cluster: Cluster) -> bool:
    """Whether a node is stuck or being replaced, or a store is being lost or rebuilt (it
    may be stuck soon): no configuration shrinks meanwhile, and no other replacement starts
    (both could leave a quorum that needs a node that will never vote)."""
    from paxosd.sim.nemesis import rebuilding_anywhere  # (nemesis imports this module)

    return bool(stuck(cluster)) or rebuilding_anywhere(cluster)


def unhealthy(cluster: Cluster) -> set[NodeId]:
    """The nodes that cannot vote now and may never again: stuck, being replaced, without a
    store, or rebuilding a lost one (it is stranded if it learns of a later epoch)."""
    observer = cluster.membership
    out = set(cluster.storeless) | (observer.replacing if observer is not None else set())
    for node in cluster.members:
        sim = cluster.nodes[node]
        rebuilding = sim is not None and sim.replica.rebuilding is not None
        if rebuilding or cluster.disks[node].rebuilding_durable or is_stuck(cluster, node):
            out.add(node)
    return out


def may_shrink(cluster: Cluster, voters: list[NodeId]) -> bool:
    """Whether the operator may take a voter out, leaving `voters`: only if their healthy
    ones still make a quorum (else the cluster could never choose again, not even the
    removal of a stuck node), and not while a store is being lost (which one is not known)."""
    if cluster.store_plan_active:
        return False
    healthy = [v for v in voters if v not in unhealthy(cluster)]
    return 2 * len(healthy) > len(voters)


def replace_stuck(cluster: Cluster) -> None:
    """The operator's round: a node that is stuck is replaced (a), as docs/operations.md
    says of a node whose store was lost once the membership has changed."""
    observer = cluster.membership
    if observer is None or cluster.now >= cluster.spec.safety_ms:
        return
    for node in cluster.members:
        if node not in observer.replacing and is_stuck(cluster, node):
            cluster.count("membership_stuck_replaced")
            Replacement(cluster, node).step()
    cluster.at(cluster.now + stuck_ms, partial(replace_stuck, cluster))


def may_lose_store(cluster: Cluster, node: NodeId) -> bool:
    """Whether a lost-store fault may strike `node` now: in a run with membership changes,
    not while another node is stuck, replaced or rebuilding, nor a voter of a configuration
    (adopted, or proposed by a change in flight) of fewer than three voters (the others
    could not choose its removal: the cluster would be lost, and only a restore from a
    backup brings it back, docs/operations.md)."""
    observer = cluster.membership
    if observer is None:
        return True
    if unhealthy(cluster) - {node}:
        return False
    # Every configuration that is, or may become, the current one: those of the epochs from
    # the earliest a member of the latest is still in (an adoption seen may not have been
    # durable: a node that crashed then restarts in the epoch before, and the change must
    # be learned again there), and every change a node accepted for a later epoch.
    configurations = observer.configurations()
    latest = configurations[max(configurations)]
    last = dict.fromkeys(latest.members, 0)
    for record in observer.adopted:
        if record.node in last:
            last[record.node] = max(last[record.node], record.epoch)
    for member in last:
        sim = cluster.nodes[member]
        if sim is not None:
            last[member] = min(last[member], sim.replica.configuration.epoch)
    oldest = min(last.values(), default=latest.epoch)
    later = [c for epoch, c in configurations.items() if epoch >= oldest]
    for batch in observer.proposed.values():
        change = in_batch(batch)
        if change is not None and change.configuration.epoch > oldest:
            later.append(change.configuration)
    return all(not c.is_voter(node) or len(c.voters) >= 3 for c in later)
