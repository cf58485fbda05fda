"""The simulated cluster's faults: what strikes during a run's safety phase, and when.

Theory of operation. Every fault is drawn from the run's one generator when the run starts
(`schedule_faults`), so a seed names its whole fault schedule. Most faults are blind (a random
node crashes at a random time); a few aim at the moments where one forgotten rule would show,
because a blind schedule reaches them too rarely for a swarm to be a test of that rule:

- `disk-loss` wipes a node whose peers have snapshotted past what the nodes that fell behind
  hold, and brings it back with them while the nodes that shared its writes are down, and
  sometimes cut off from the ones that fell behind: a rebuilt node that voted before reaching
  its peers' snapshot would let a quorum forget chosen slots.
- `stale-leader` cuts the leader off from its peers, or pauses it, but never from its clients,
  which read at the old leader and write at the new one: a leader that answered reads without
  a quorum's confirmation would serve stale state. Sometimes it also crashes the first node that
  promises the new ballot, just after its Promise left, and reconnects it to the old leader:
  a promise that left before it was durable would then be forgotten, and the old leader's
  Accepts taken by a node that had promised a higher ballot.
- `crash` includes power failures of every node at once, armed to strike while a follower's
  sync runs (in a one-node cluster, the leader's): the moment a vote or an answer that left
  before its records were durable would be revealed as forgotten.

Faults that need peers (partitions, an isolated or stale leader, a lost disk, rebuilt from
every peer) do not apply to a one-node cluster and are skipped there (`NEEDS_PEERS`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from paxosd.core.multi.configuration import Configuration
from paxosd.core.types import NodeId
from paxosd.sim import membership

if TYPE_CHECKING:
    from paxosd.sim.cluster import Cluster

FAULTS = {
    "crash": "nodes are killed and restarted (unsynced writes are lost)",
    "partition": "the cluster splits into two sides for a while",
    "isolate-leader": "the current leader is cut off from everyone",
    "stale-leader": "the leader is cut off from its peers, or paused, but not from its "
    "clients, which read at it and write at the new leader",
    "loss": "peer messages are lost (3%)",
    "duplicate": "peer messages are delivered twice (3%)",
    "reorder": "message delays vary widely, so messages overtake each other",
    "delay": "some messages take 20 to 60 times longer",
    "slow": "a node runs 5 to 10 times slower for a while",
    "torn-write": "a crash tears the last unsynced record",
    "disk-loss": "a node loses its whole disk while others are down, and rebuilds",
    "reinit": "an operator re-initialises a member (--reinitialize), crashing at any step",
    "other-members": "an operator restarts nodes with a config naming too few members",
    "clock-skew": "wall clocks are up to 10 minutes off",
    "clock-jump": "the leader's wall clock jumps forward or back by seconds",
    "transfer": "an operator hands leadership to another voter (transfer-leader)",
    membership.FAULT: membership.DESCRIPTION,
}
NEEDS_PEERS = frozenset(
    {
        "partition", "isolate-leader", "stale-leader", "disk-loss", "reinit", "other-members",
        "transfer", "membership",
    }
)  # fmt: skip
# Faults drawn and scheduled with a generator of their own (derived from the run's seed), so
# that adding them left every older fault's schedule, seed for seed, as it was.
OWN_GENERATOR = frozenset({"transfer", "membership"})

wall_skew_ms_max = 600_000.0
retry_ms = 50.0  # a fault waiting for the right moment looks again this often
crash_down_ms = (20.0, 800.0)  # how long a crashed node stays down
disk_loss_wait_ms_max = 800.0  # how long the laggers may be held down before the disk is lost


def schedule_faults(cluster: Cluster) -> None:
    spec, rng = cluster.spec, cluster.rng
    faults = cluster.active_faults
    if len(cluster.members) == 1:
        faults -= NEEDS_PEERS
    if membership.FAULT in faults:
        membership.watch(cluster)
        membership.schedule(cluster, own_generator(cluster.seed, membership.FAULT))
    horizon = spec.safety_ms
    members = list(cluster.members)
    if "reorder" in faults:
        cluster.delay_max = 15.0
    if "loss" in faults:
        cluster.loss = 0.03
    if "duplicate" in faults:
        cluster.duplicate = 0.03
    if "delay" in faults:
        cluster.long_delays = True
    if "crash" in faults:
        for _ in range(rng.choice((0, 1, 1, 2))):
            # A power failure: every node at once, while a follower's fsync runs (the moment a
            # vote sent before its sync would be lost). Only what was synced survives anywhere.
            down = rng.uniform(200, horizon * 0.8)
            tears = {victim: "torn-write" in faults and rng.random() < 0.5 for victim in members}
            failure = partial(_power_failure, cluster, tears, rng.uniform(20, 200))
            cluster.at(down, partial(cluster.armed_crashes.__setitem__, 0, failure))
        # A node restarts from its own snapshot: crashed soon after it takes one.
        armed_at = rng.uniform(100, horizon * 0.6)
        snapshot_crash = SnapshotCrash(
            node=rng.choice(members), after_ms=rng.uniform(0, 30), down_ms=rng.uniform(20, 200)
        )
        cluster.at(armed_at, partial(setattr, cluster, "snapshot_crash", snapshot_crash))
        for _ in range(rng.randint(1, 4)):
            victim = rng.choice(members)
            down = rng.uniform(100, horizon * 0.9)
            torn = "torn-write" in faults and rng.random() < 0.5
            crash = partial(cluster.crash, victim, torn)
            cluster.at(down, partial(_crash_now_or_mid_sync, cluster, victim, crash))
            cluster.at(down + rng.uniform(*crash_down_ms), partial(cluster.restart, victim))
    if "partition" in faults:
        for _ in range(rng.randint(1, 2)):
            start = rng.uniform(100, horizon * 0.8)
            side = set(rng.sample(members, rng.randint(1, len(members) // 2)))
            cluster.at(start, partial(_cut, cluster, side))
            cluster.at(rng.uniform(start + 100, horizon), cluster.heal)
    if "isolate-leader" in faults:
        start = rng.uniform(200, horizon * 0.7)
        cluster.at(start, partial(_isolate_leader, cluster))
        cluster.at(min(horizon, start + rng.uniform(300, 900)), cluster.heal)
    if "stale-leader" in faults:
        for _ in range(rng.randint(1, 2)):
            plan = StaleLeader(
                pause=rng.random() < 0.5,
                length_ms=rng.uniform(400, 900),
                crash_voter=rng.random() < 0.5,
                restart_ms=rng.uniform(5, 30),
                reconnect_ms=rng.uniform(10, 40),
            )
            start = rng.uniform(200, horizon * 0.7)
            cluster.at(start, partial(_stale_leader, cluster, plan, horizon * 0.8))
    if "other-members" in faults:
        # As `paxosd up --nodes 3` on a 5-node data directory did: some nodes restarted with a
        # config naming only them, the others not started, after those fell behind.
        named = tuple(sorted(rng.sample(members, max(1, (len(members) - 1) // 2))))
        behind_ms, fix_ms = rng.uniform(100, 300), rng.uniform(200, 600)
        start = rng.uniform(200, horizon * 0.6)
        restart = partial(_restart_with_other_members, cluster, named, behind_ms, fix_ms)
        cluster.at(start, partial(_named_fall_behind, cluster, named, restart))
    if "slow" in faults:
        node = rng.choice(members)
        start = rng.uniform(0, horizon * 0.5)
        cluster.at(start, partial(_slow, cluster, node, rng.uniform(5, 10)))
        cluster.at(rng.uniform(start, horizon), partial(_slow, cluster, node, 1.0))
    if "disk-loss" in faults and len(members) >= 3:
        _schedule_disk_loss(cluster, members, reinit=False)
    if "reinit" in faults and len(members) >= 3:
        _schedule_disk_loss(cluster, members, reinit=True)
    if "clock-skew" in faults:
        for node in members:
            cluster.wall_offset_ms[node] = rng.uniform(-wall_skew_ms_max, wall_skew_ms_max)
        cluster.count("clock_skew")
    if "clock-jump" in faults:
        for _ in range(rng.randint(2, 6)):
            jump = rng.choice((-1, 1)) * rng.uniform(1_000, 10_000)
            cluster.at(rng.uniform(0, horizon), partial(_jump_leader, cluster, jump))
    if "transfer" in faults:
        own = own_generator(cluster.seed, "transfer")
        for _ in range(own.randint(1, 4)):
            at = own.uniform(100, horizon * 0.9)
            cluster.at(at, partial(_transfer, cluster, own.random()))


def own_generator(seed: int, fault: str) -> random.Random:
    """The generator of a fault in `OWN_GENERATOR`: a function of the run's seed alone."""
    return random.Random(f"{seed}/{fault}")


# -- a restart from a node's own snapshot -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotCrash:
    node: NodeId
    after_ms: float  # the crash strikes this long after the node noted its snapshot ...
    down_ms: float  # ... and the node restarts this long after the crash


def crash_after_snapshot(cluster: Cluster, node: NodeId) -> None:
    """`node` just took a snapshot: if a crash is armed for it, strike soon (its sync may
    or may not be done), and restart it, from that snapshot if it was made durable."""
    armed = cluster.snapshot_crash
    if armed is None or armed.node != node:
        return
    cluster.snapshot_crash = None
    crash_at = cluster.now + armed.after_ms
    cluster.at(crash_at, partial(_crash_counted, cluster, node, "snapshot_crash"))
    cluster.at(crash_at + armed.down_ms, partial(cluster.restart, node))


# -- a lost disk ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiskLoss:
    victim: NodeId
    holders: tuple[NodeId, ...]  # with the victim, a quorum that has the latest writes
    laggers: tuple[NodeId, ...]  # down first: they fall behind
    gap_ms: float  # how long the laggers are down at least before the disk is lost
    back_ms: float  # from the loss to the victim's (and the laggers') restart
    holders_back_ms: float  # from then to the holders' restart
    cut_ms: float  # the holders are cut off from the laggers this long (0: not at all)
    deadline_ms: float  # the disk is lost by then, ahead or not
    # Not lost, re-initialised by an operator (`--reinitialize`), whose command dies at this
    # point of its steps (0 to 1: see `_reinitialize`); None: the disk is lost.
    reinit_crash: float | None = None
    rerun_ms: float = 0.0  # the operator runs `--reinitialize` again this long after


def _schedule_disk_loss(cluster: Cluster, members: list[NodeId], reinit: bool) -> None:
    """A disk is lost at the worst moment: some nodes fall behind (down), the victim and the
    nodes that shared its writes go on until they have snapshotted past what the laggers hold,
    then go down too; the victim's disk is gone, and it comes back with the laggers, which
    together make a quorum, while the others are still down. Half the time the holders, once
    back, are cut off from the laggers (not from the victim) for a while, so the laggers can
    only elect a leader with the victim's vote. A node that voted on an empty store, or before
    it reached its peers' snapshot, would let that quorum forget acknowledged writes."""
    rng = cluster.rng
    victim, *others = rng.sample(members, len(members))
    holders = tuple(others[: (len(members) - 1) // 2])
    plan = DiskLoss(
        victim=victim,
        holders=holders,
        laggers=tuple(others[len(holders) :]),
        gap_ms=rng.uniform(100, 300),
        back_ms=rng.uniform(10, 50),
        holders_back_ms=rng.uniform(200, 500),
        cut_ms=rng.uniform(300, 800) if rng.random() < 0.5 else 0.0,
        deadline_ms=0.0,  # set when the laggers go down
        reinit_crash=rng.random() if reinit else None,
        rerun_ms=rng.uniform(50, 300),
    )
    start = rng.uniform(200, cluster.spec.safety_ms * 0.4)
    cluster.at(start, partial(_laggers_down, cluster, plan, cluster.spec.safety_ms * 0.5))


def _laggers_down(cluster: Cluster, plan: DiskLoss, start_by_ms: float) -> None:
    """Start when every node is up under a leader (or when it is time anyway), and never
    while another node rebuilds: two rebuilding nodes wait for each other's report forever
    (by design: a rebuild needs every peer; two lost stores need an operator)."""
    up = all(cluster.nodes[n] is not None for n in cluster.members) and not cluster.held_down
    later = partial(_laggers_down, cluster, plan, start_by_ms)
    if rebuilding_anywhere(cluster):
        if cluster.now < cluster.spec.safety_ms * 0.6:
            cluster.at(cluster.now + retry_ms, later)
        return  # too late now: this run loses no second store
    if (not up or cluster.leader() is None) and cluster.now < start_by_ms:
        cluster.at(cluster.now + retry_ms, later)
        return
    plan = replace(plan, deadline_ms=cluster.now + plan.gap_ms + disk_loss_wait_ms_max)
    cluster.store_plan_active = True
    behind = 0
    for node in plan.laggers:
        sim = cluster.nodes[node]
        if sim is not None:
            behind = max(behind, sim.replica.status().chosen_upto)
        cluster.crash(node)
        cluster.held_down.add(node)
    cluster.at(cluster.now + plan.gap_ms, partial(_lose_when_ahead, cluster, plan, behind))


def _lose_when_ahead(cluster: Cluster, plan: DiskLoss, behind: int) -> None:
    """Wait until the holders have snapshotted past the laggers (unless one of them, or the
    victim, went down meanwhile, or the deadline comes)."""
    writers = (*plan.holders, plan.victim)
    going = all(cluster.nodes[n] is not None for n in writers) and cluster.now < plan.deadline_ms
    snapshots = [cluster.snapshot_slot(node) for node in plan.holders]
    if going and min(snapshots, default=0) <= behind:
        cluster.at(cluster.now + retry_ms, partial(_lose_when_ahead, cluster, plan, behind))
        return
    for node in plan.holders:
        cluster.crash(node)
    if not membership.may_lose_store(cluster, plan.victim):
        cluster.crash(plan.victim)  # (sim/membership.py says when a store may not be lost)
        cluster.count("store_loss_skipped")
    elif plan.reinit_crash is None:
        cluster.lose_disk(plan.victim)
    else:
        cluster.crash(plan.victim)  # the operator stops it
        _reinitialize(cluster, plan)
    cluster.store_plan_active = False  # from now on, the victim's store says it rebuilds
    cluster.held_down.update((*plan.holders, plan.victim))
    back = cluster.now + plan.back_ms
    for node in (*plan.laggers, plan.victim):
        cluster.at(back, partial(cluster.restart, node, release=True))
    holders_back = back + plan.holders_back_ms
    for node in plan.holders:
        cluster.at(holders_back, partial(cluster.restart, node, release=True))
    if plan.cut_ms:
        cluster.at(holders_back, partial(cluster.cut_links, plan.holders, plan.laggers))
        mend = partial(cluster.mend_links, plan.holders, plan.laggers)
        cluster.at(holders_back + plan.cut_ms, mend)


def rebuilding_anywhere(cluster: Cluster) -> bool:
    """Whether some node is rebuilding, or will be (its store lost or being re-made), or
    would be if it crashed now: a node that just finished its rebuild in memory still has
    the durable mark until its turn's sync, and a crash then brings it back rebuilding."""
    if cluster.store_plan_active or cluster.storeless or cluster.rebuild_crash is not None:
        return True
    for node in cluster.members:
        if cluster.disks[node].rebuilding_durable:
            return True
        sim = cluster.nodes[node]
        if sim is not None and sim.replica.status().rebuilding:
            return True
    return False


def _reinitialize(cluster: Cluster, plan: DiskLoss) -> None:
    """`paxosd node --reinitialize` on the stopped victim: its store moved aside, then a new
    one made, whole, with its rebuilding mark (in the planted `reinit-unmarked` variant: made
    empty, then marked, two steps). The command dies after a step drawn by the plan; the next
    ordinary start then finds the old store (nothing moved yet), none (refused: the operator
    runs the command again, in full, a little later), or the new one."""
    node = plan.victim
    cluster.count("reinit")
    unmarked = cluster.variant.reinit_unmarked
    steps = ["nothing moved yet", "store moved aside", *(["made, unmarked"] if unmarked else [])]
    assert plan.reinit_crash is not None
    died_after = int(plan.reinit_crash * (len(steps) + 1))  # len(steps): it never died
    if died_after < len(steps):
        cluster.count("reinit_crash")
    if died_after >= 1:
        cluster.move_store_aside(node)
    if died_after >= 2:
        cluster.make_store(node, rebuilding=not unmarked)
    if died_after > len(steps) - 1 and unmarked:
        cluster.make_store(node, rebuilding=True)  # the mark, written second
    if died_after >= 1:
        cluster.rebuild_crash = node
    if node in cluster.storeless:
        rerun = partial(_reinitialize_again, cluster, node)
        cluster.at(cluster.now + plan.back_ms + plan.rerun_ms, rerun)


def _reinitialize_again(cluster: Cluster, node: NodeId) -> None:
    """The node was refused for want of a store: the operator runs `--reinitialize` again."""
    if node in cluster.storeless and cluster.nodes[node] is None:
        cluster.make_store(node, rebuilding=True)
        cluster.restart(node)


def _named_fall_behind(
    cluster: Cluster, named: tuple[NodeId, ...], then: Callable[[], None]
) -> None:
    """The nodes `named` go down (and fall behind the others, a majority), unless a store is
    being rebuilt (a restart with other members then would only stall it)."""
    if rebuilding_anywhere(cluster):
        return
    for node in named:
        cluster.crash(node)
        cluster.held_down.add(node)
    then()


def _restart_with_other_members(
    cluster: Cluster, named: tuple[NodeId, ...], behind_ms: float, fix_ms: float
) -> None:
    """After `behind_ms`, the operator stops every node and starts only those `named`, with a
    config file naming only them: each replica must refuse to run with other members than its
    store's (it stays down). A majority of that config need not meet a majority of the real
    one, so nodes that ran with it could choose other values for slots the others chose.
    After `fix_ms` the operator puts the right config back and starts every node."""
    now = cluster.now + behind_ms
    cluster.at(now, partial(_start_named_only, cluster, named))
    cluster.at(now + fix_ms, partial(_restart_with_right_members, cluster, named))


def _start_named_only(cluster: Cluster, named: tuple[NodeId, ...]) -> None:
    other = Configuration(named)
    for node in cluster.members:
        cluster.crash(node)
        cluster.held_down.add(node)
    for node in named:
        cluster.misconfigured[node] = other
        cluster.restart(node, release=True)
    cluster.count("other_members")


def _restart_with_right_members(cluster: Cluster, named: tuple[NodeId, ...]) -> None:
    for node in named:
        cluster.misconfigured.pop(node, None)
        cluster.crash(node)
    for node in cluster.members:
        cluster.restart(node, release=True)


def crash_while_rebuilding(cluster: Cluster, node: NodeId) -> None:
    """`node` merged its peers' reports (its adopted state being synced now): crash it, and
    bring it back, still rebuilding."""
    crash_at = cluster.now + cluster.rng.uniform(0, 2.0)
    cluster.at(crash_at, partial(_crash_counted, cluster, node, "rebuild_crash"))
    cluster.at(crash_at + cluster.rng.uniform(20, 100), partial(cluster.restart, node))


# -- a stale leader ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaleLeader:
    pause: bool  # paused (takes no input until the end) rather than cut off from its peers
    length_ms: float
    crash_voter: bool  # crash the first node that promises the next ballot, just after
    restart_ms: float  # ... restart it this soon after ...
    reconnect_ms: float  # ... and reconnect it to the old leader this soon after the crash


def _stale_leader(cluster: Cluster, plan: StaleLeader, deadline_ms: float) -> None:
    """Wait for a leader whose peers, without it, can elect another; then strike."""
    leader = cluster.leader()
    others = tuple(n for n in cluster.members if n != leader)
    if leader is None or cluster.stale_leader is not None or not _can_elect(cluster, others):
        if cluster.now < deadline_ms:  # not now: try again a little later
            cluster.at(cluster.now + retry_ms, partial(_stale_leader, cluster, plan, deadline_ms))
        return
    cluster.stale_leader = leader
    if plan.pause:
        cluster.paused_until[leader] = cluster.now + plan.length_ms
    else:
        cluster.cut_links((leader,), others)
        if plan.crash_voter:
            cluster.promise_crash = (leader, plan.restart_ms, plan.reconnect_ms)
    cluster.count("stale_leader")
    cluster.at(cluster.now + plan.length_ms, partial(_stale_leader_ends, cluster, plan, others))


def _can_elect(cluster: Cluster, nodes: tuple[NodeId, ...]) -> bool:
    """Whether a quorum of these nodes is up, votes (not rebuilding) and can talk."""
    voters = []
    for node in nodes:
        sim = cluster.nodes[node]
        if (
            sim is not None
            and node not in cluster.held_down
            and not sim.replica.status().rebuilding
        ):
            voters.append(node)
    connected = [a for a in voters if not any((a, b) in cluster.blocked for b in voters)]
    return 2 * len(connected) > len(cluster.members)


def _stale_leader_ends(cluster: Cluster, plan: StaleLeader, others: tuple[NodeId, ...]) -> None:
    leader = cluster.stale_leader
    if leader is None:
        return
    cluster.stale_leader = None
    cluster.promise_crash = None
    if not plan.pause:  # a pause ends by itself
        cluster.mend_links((leader,), others)


def crash_after_promise(cluster: Cluster, voter: NodeId) -> None:
    """`voter` just sent a Promise for a new ballot while the old leader is cut off: crash it
    within about one sync's time, bring it back, and reconnect it to the old leader, which may
    still believe it leads and will retransmit its Accepts."""
    armed = cluster.promise_crash
    if armed is None:
        return
    cluster.promise_crash = None
    old_leader, restart_ms, reconnect_ms = armed
    crash_at = cluster.now + cluster.rng.uniform(0, 1.0)
    cluster.at(crash_at, partial(_crash_counted, cluster, voter, "promise_crash"))
    cluster.at(crash_at + restart_ms, partial(cluster.restart, voter))
    cluster.at(crash_at + reconnect_ms, partial(cluster.mend_links, (old_leader,), (voter,)))


def _crash_counted(cluster: Cluster, node: NodeId, fault: str) -> None:
    if cluster.nodes[node] is not None:
        cluster.crash(node)
        cluster.count(fault)


# -- the rest -----------------------------------------------------------------------------------


def _transfer(cluster: Cluster, pick: float) -> None:
    """An operator asks the leader to hand leadership to another voter that is up (the
    handover may still fail: the target can crash, or be cut off, meanwhile)."""
    leader = cluster.leader()
    if leader is None:
        return
    node = cluster.nodes[leader]
    others = sorted(n for n, sim in cluster.nodes.items() if n != leader and sim is not None)
    if node is None or not others:
        return
    target = others[int(pick * len(others))]
    if node.driver.transfer_leadership(target) is None:
        cluster.count("transfer")


def _jump_leader(cluster: Cluster, jump_ms: float) -> None:
    """The leader's wall clock jumps (NTP stepping it, an operator setting it): the clock
    whose reading would matter if anything used it."""
    leader = cluster.leader()
    if leader is not None:
        cluster.wall_offset_ms[leader] += jump_ms
        cluster.count("clock_jump")


def _crash_now_or_mid_sync(cluster: Cluster, node: NodeId, crash: Callable[[], None]) -> None:
    """Half the crashes strike while an fsync runs (`node`'s, or any follower's for 0): the
    moment when anything sent before its records were durable would be revealed as forgotten."""
    if cluster.rng.random() < 0.5:
        cluster.armed_crashes[node] = crash
    else:
        crash()


def _power_failure(cluster: Cluster, tears: dict[NodeId, bool], down_ms: float) -> None:
    for victim, torn in tears.items():
        cluster.crash(victim, torn)
        cluster.at(cluster.now + down_ms, partial(cluster.restart, victim))
    cluster.count("power_failure")


def _cut(cluster: Cluster, side: set[NodeId]) -> None:
    cluster.partition(side)
    cluster.count("partition")


def _isolate_leader(cluster: Cluster) -> None:
    leader = cluster.leader()
    if leader is not None:
        cluster.partition({leader})
        cluster.count("isolate_leader")


def _slow(cluster: Cluster, node: NodeId, factor: float) -> None:
    cluster.slowness[node] = factor
    if factor != 1.0:
        cluster.count("slow")


def heal_everything(cluster: Cluster) -> None:
    """The safety phase is over: every fault stops and every node comes back."""
    cluster.armed_crashes.clear()
    cluster.promise_crash = None
    cluster.stale_leader = None
    cluster.paused_until.clear()
    cluster.held_down.clear()
    cluster.misconfigured.clear()  # the operator put the right config files back
    cluster.snapshot_crash = None
    cluster.rebuild_crash = cluster.crash_mid_rebuild = None
    for node in sorted(cluster.storeless):  # an operator finishes what was started
        cluster.make_store(node, rebuilding=True)
    cluster.heal()
    cluster.loss = cluster.duplicate = 0.0
    cluster.long_delays = False
    cluster.delay_max = cluster.peer_delay_ms_max
    for node in cluster.members:
        cluster.slowness[node] = 1.0
        cluster.restart(node)


def links(side: Iterable[NodeId], other: Iterable[NodeId]) -> set[tuple[NodeId, NodeId]]:
    """Both directions of every link between `side` and `other`."""
    there = {(a, b) for a in side for b in other if a != b}
    return there | {(b, a) for a, b in there}
