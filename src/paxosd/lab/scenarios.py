"""The book's stories, replayed in the simulator with the timing that makes each one happen.

Every scenario is a function of a seed that builds a `World`, arranges proposals, delays and
faults, runs it, and returns the trace, the verdicts of the three checkers and a short account
of what a reader should notice. Delays are forced with the world's delay rules where the story
needs a particular race (who hears red first); everything else is the seeded simulator.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paxosd.check.consensus import Verdict
from paxosd.core.protocol import CoreConfig
from paxosd.core.quorum import Majority
from paxosd.core.types import Envelope
from paxosd.lab.algorithms import get
from paxosd.sim.swarm import judge
from paxosd.sim.trace import Event
from paxosd.sim.world import NetworkConfig, World


@dataclass(frozen=True, slots=True)
class Witness:
    """Why Paxos keeps a chosen value: an acceptor in both the quorum that accepted it and the
    quorum that later promised a higher ballot, which reported the value to the new proposer."""

    chosen_at: int
    value: Any
    accepting_quorum: tuple[int, ...]
    promising_quorum: tuple[int, ...]
    witness: int
    later_ballot: str


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    algorithm: str
    nodes: int
    seed: int
    story: str
    trace: list[Event]
    verdicts: dict[str, Verdict]
    facts: dict[str, Any] = field(default_factory=dict)
    witness: Witness | None = None

    @property
    def fault_tolerance(self) -> Verdict:
        from paxosd.lab.check import fault_tolerance_of_run

        return fault_tolerance_of_run(self.verdicts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "scenario": self.name,
            "title": self.title,
            "algorithm": self.algorithm,
            "nodes": self.nodes,
            "seed": self.seed,
            "story": self.story,
            "properties": {p: v.status for p, v in self.verdicts.items()},
            "details": {p: v.detail for p, v in self.verdicts.items()},
            "fault_tolerance": self.fault_tolerance.status,
            "fault_tolerance_detail": self.fault_tolerance.detail,
            "facts": self.facts,
            "trace": self.trace,
        }
        if self.witness is not None:
            w = self.witness
            data["witness"] = {
                "chosen_at": w.chosen_at,
                "value": w.value,
                "accepting_quorum": list(w.accepting_quorum),
                "promising_quorum": list(w.promising_quorum),
                "witness": w.witness,
                "later_ballot": w.later_ballot,
            }
        return data


def _world(
    algorithm: str,
    nodes: int,
    seed: int,
    config: CoreConfig | None = None,
    network: NetworkConfig | None = None,
) -> World:
    return World(get(algorithm).factory, nodes, seed, config or CoreConfig(), network)


def _value_of(envelope: Envelope) -> Any:
    return getattr(envelope.msg, "value", None)


def _result(
    name: str, title: str, algorithm: str, world: World, seed: int, story: str
) -> ScenarioResult:
    outcome = world.outcome()
    return ScenarioResult(
        name, title, algorithm, len(world.members), seed, story, outcome.trace, judge(outcome)
    )


# -- the fixed leader ---------------------------------------------------------------------


def leader_crash(seed: int) -> ScenarioResult:
    world = _world("leader", 3, seed)
    world.at(5, lambda: world.crash(1))
    world.at(10, lambda: world.propose(2, "red"))
    world.at(12, lambda: world.propose(3, "blue"))
    world.run(1_000)
    return _result(
        "leader-crash",
        "The leader crashes: nobody can decide",
        "leader",
        world,
        seed,
        "Node 1 is the one and only leader. It crashes before any proposal arrives. Nodes 2 "
        "and 3 keep sending their proposals and questions to it, and no answer ever comes: a "
        "single crash stops the whole cluster. Termination is violated.",
    )


# -- failover and split brain -------------------------------------------------------------


def split_brain(seed: int) -> ScenarioResult:
    world = _world("failover", 5, seed)
    world.at(30, lambda: world.partition({1, 2}, {3, 4, 5}))
    world.at(150, lambda: world.propose(2, "blue"))
    world.at(155, lambda: world.propose(4, "red"))
    world.at(400, world.heal)
    world.run(600)
    result = _result(
        "split-brain",
        "A partition elects a second leader: split brain",
        "failover",
        world,
        seed,
        "Node 1 leads. A partition cuts {1, 2} off from {3, 4, 5}. Nodes 3 to 5 stop hearing "
        "node 1's heartbeats, decide it must be dead, and promote node 3, the lowest id they "
        "still hear. Now there are two leaders. Node 2 proposes blue to leader 1, node 4 "
        "proposes red to leader 3, and each side decides a different value. When the "
        "partition heals, the cluster holds both answers: Agreement is violated.",
    )
    return result


# -- majority voting ----------------------------------------------------------------------

RED_SIDE = {1, 3, 4}
BLUE_SIDE = {2, 5, 6}


def _racing_votes(world: World, last: int, last_delay_ms: float) -> None:
    """Red reaches nodes 1, 3, 4 first and blue reaches 2, 5, 6 first; node `last` hears
    everything late (blue first)."""

    def rule(envelope: Envelope, now: float) -> float | None:
        value = _value_of(envelope)
        if envelope.dst == last:
            return last_delay_ms + (0 if value == "blue" else 5)
        if value == "red":
            return 1.0 if envelope.dst in RED_SIDE else 20.0
        if value == "blue":
            return 1.0 if envelope.dst in BLUE_SIDE else 20.0
        return None

    world.delay_rules.append(rule)


def split_vote(seed: int) -> ScenarioResult:
    world = _world("majority", 7, seed)
    _racing_votes(world, last=7, last_delay_ms=200.0)
    world.at(0, lambda: world.propose(1, "red"))
    world.at(0, lambda: world.propose(2, "blue"))
    world.at(50, lambda: world.crash(7))
    world.run(1_000)
    result = _result(
        "split-vote",
        "A split vote plus one crash: stuck forever",
        "majority",
        world,
        seed,
        "Seven nodes vote; red and blue are proposed at once. Red reaches nodes 1, 3 and 4 "
        "first, blue reaches 2, 5 and 6 first, and each node votes for what it heard first: "
        "three votes each. Node 7 has not voted yet when it crashes. Four votes are needed, "
        "six votes are cast and no more will ever come. The cluster is stuck: Termination is "
        "violated by a single, badly timed crash.",
    )
    result.facts["votes"] = _final_votes(result.trace)
    return result


def _final_votes(trace: list[Event]) -> dict[str, list[int]]:
    votes: dict[str, list[int]] = {}
    for event in trace:
        if event["ev"] == "note" and event["text"].startswith("votes "):
            votes.setdefault(event["text"].removeprefix("votes "), []).append(event["node"])
    return {value: sorted(nodes) for value, nodes in sorted(votes.items())}


def tiebreak(seed: int) -> ScenarioResult:
    world = _world("majority", 7, seed, CoreConfig(variant="tiebreak", suspect_after_ticks=3))
    _racing_votes(world, last=7, last_delay_ms=300.0)
    world.at(0, lambda: world.propose(1, "red"))
    world.at(0, lambda: world.propose(2, "blue"))
    world.run(1_000)
    result = _result(
        "tiebreak",
        '"Red wins ties" changes its mind when the silent node was only slow',
        "majority",
        world,
        seed,
        "The same race, but this time the cluster has a rule: if the vote is tied and the "
        "last voter has been silent for a while, red wins. The nodes apply it and decide red. "
        "But node 7 was not dead, only slow: its vote for blue arrives, blue now has four "
        "votes, a true majority, and nodes switch to blue. A decision that changes is no "
        "decision: Agreement is violated. Waiting longer would not help, since a slow node "
        "and a crashed one look the same from outside.",
    )
    result.facts["votes"] = _final_votes(result.trace)
    return result


# -- Paxos ---------------------------------------------------------------------------------


def dueling_proposers(seed: int, randomized: bool = False) -> ScenarioResult:
    """Two proposers start together. With a fixed retry delay they pre-empt each other
    forever; with a randomized one, one of them soon gets through."""
    config = CoreConfig(
        fixed_backoff=not randomized,
        backoff_ticks_max=4 if randomized else 1,
        retry_after_ticks=50,
        learner_query_ticks=None,
    )
    network = NetworkConfig(delay_ms_min=2.0, delay_ms_max=2.0, tick_ms=1.0)
    world = _world("paxos", 3, seed, config, network)
    world.at(0, lambda: world.propose(1, "red"))
    world.at(0, lambda: world.propose(2, "blue"))
    world.run(200 if not randomized else 1_000)
    kind = "randomized" if randomized else "fixed"
    result = _result(
        "dueling-proposers",
        f"Dueling proposers, {kind} retry delay",
        "paxos",
        world,
        seed,
        "Nodes 1 and 2 propose at the same moment. Each one's Prepare reaches the acceptors "
        "just after the other's, so each ballot is pre-empted before its Accept lands. With a "
        "fixed retry delay both retry in lockstep and the duel never ends (no decision, ever "
        "higher ballots): Paxos does not guarantee termination, as FLP says no algorithm can. "
        "With a randomized delay one proposer soon retries late enough for the other to win.",
    )
    result.facts["rounds"] = rounds_used(result.trace)
    result.facts["decided"] = bool(world.decisions)
    result.facts["retry_delay"] = kind
    return result


def rounds_used(trace: list[Event]) -> int:
    """The highest round any proposer started."""
    rounds = [
        int(event["text"].split()[-1].split(".")[0])
        for event in trace
        if event["ev"] == "note" and event["text"].startswith("starts ballot")
    ]
    return max(rounds, default=0)


@dataclass(frozen=True, slots=True)
class Sweep:
    runs: int
    decided: int
    rounds: list[int]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def to_json(self) -> dict[str, Any]:
        counts: dict[int, int] = {}
        for r in self.rounds:
            counts[r] = counts.get(r, 0) + 1
        return {
            "runs": self.runs,
            "decided": self.decided,
            "rounds_median": self.median,
            "rounds_max": max(self.rounds),
            "rounds_histogram": {str(k): v for k, v in sorted(counts.items())},
        }


def dueling_sweep(runs: int, seed: int, progress: Callable[[int], None] | None = None) -> Sweep:
    """Randomized backoff over many seeds: how many rounds until a decision?"""
    rounds: list[int] = []
    decided = 0
    for i in range(runs):
        result = dueling_proposers(seed + i, randomized=True)
        decided += bool(result.facts["decided"])
        rounds.append(result.facts["rounds"])
        if progress is not None:
            progress(i + 1)
    return Sweep(runs, decided, rounds)


def paxos_holds(seed: int) -> ScenarioResult:
    network = NetworkConfig(delay_ms_min=2.0, delay_ms_max=2.0)
    world = _world("paxos", 3, seed, CoreConfig(), network)

    def slow_accept_to_3(envelope: Envelope, now: float) -> float | None:
        name = type(envelope.msg).__name__
        if envelope.src == 1 and envelope.dst == 3 and name == "Accept":
            return 500.0
        return None

    world.delay_rules.append(slow_accept_to_3)
    world.at(0, lambda: world.propose(1, "red"))
    world.at(7, lambda: world.crash(1))  # after node 2 accepted, before anyone hears of it
    world.at(30, lambda: world.propose(3, "blue"))
    world.at(300, lambda: world.restart(1))
    world.run(1_000)
    result = _result(
        "paxos-holds",
        "A chosen value survives its proposer's crash",
        "paxos",
        world,
        seed,
        "Node 1 proposes red; its own acceptor and node 2's accept it, so red is chosen - "
        "but node 1 crashes before anyone learns that, and its Accept to node 3 is still on "
        "its way. Node 3 now proposes blue with a higher ballot. Its promise quorum {2, 3} "
        "overlaps the accepting quorum {1, 2} in node 2, which reports that it accepted red. "
        "Node 3 must carry red forward, so the cluster decides red, the value that was already "
        "chosen. Quorums that always intersect are why Paxos never changes its mind.",
    )
    result.witness = find_witness(result.trace, Majority(tuple(world.members)))
    return result


# -- database replication (the book's Example 2) -------------------------------------------


def _two_signups(variant: str, seed: int) -> World:
    """Alice signs up through the web server on replica 1, Bob through the one on replica 2,
    at the same moment; replicas sync their rows after 50 ms (lazily)."""
    network = NetworkConfig(delay_ms_min=2.0, delay_ms_max=2.0)
    world = _world("replication", 3, seed, CoreConfig(variant=variant), network)

    def lazy_sync(envelope: Envelope, now: float) -> float | None:
        return 50.0 if type(envelope.msg).__name__ == "Replicate" else None

    world.delay_rules.append(lazy_sync)
    world.at(0, lambda: world.propose(1, "alice"))
    world.at(0, lambda: world.propose(2, "bob"))
    return world


def _rows(world: World) -> dict[str, str]:
    """Each replica's row for the name, as the users table shows it."""
    from paxosd.core.lessons.replication import USERNAME

    rows = {}
    for node, core in sorted(world.cores.items()):
        owner = None if core is None else core.query()
        rows[f"replica {node}"] = "(none)" if owner is None else f"{USERNAME} -> {owner}"
    return rows


def replication_conflict(seed: int) -> ScenarioResult:
    world = _two_signups("correct", seed)
    world.run(1_000)
    result = _result(
        "replication-conflict",
        "Multi-leader replication: two rows for one unique name",
        "replication",
        world,
        seed,
        "Alice and Bob both sign up as paxos_expert at the same moment, through web servers "
        "connected to replicas 1 and 2. Each replica accepts the insert locally (the name is "
        "free in its copy of the table), tells its web server 'registered', and sends the row "
        "to the others later. When the rows arrive, each replica already holds the name: the "
        "unique constraint refuses the other row, and the conflict stays. Two users were told "
        "they own paxos_expert: Agreement is violated. The web servers handed their consensus "
        "problem to the database, and the database did not solve it.",
    )
    result.facts["rows"] = _rows(world)
    return result


def replication_consensus(seed: int) -> ScenarioResult:
    world = _two_signups("consensus", seed)
    world.run(1_000)
    result = _result(
        "replication-consensus",
        "A consensus-backed table: one row",
        "replication",
        world,
        seed,
        "The same two sign-ups, but the table is backed by consensus: before any replica "
        "inserts the row, Paxos decides who owns paxos_expert. Both replicas propose their "
        "user; one ballot wins a quorum of promises and accepts, the other learns the outcome. "
        "Every replica ends with the same single row, and the other web server is told the "
        "name is taken.",
    )
    result.facts["rows"] = _rows(world)
    return result


def find_witness(trace: list[Event], quorum: Majority) -> Witness | None:
    """Find the first chosen (ballot, value) and the first later ballot that a quorum promised;
    the acceptors in both quorums are the witnesses."""
    accepted: dict[tuple[str, str], list[int]] = {}
    chosen: tuple[int, str, str, tuple[int, ...]] | None = None
    promised: dict[str, list[int]] = {}
    for event in trace:
        if event["ev"] != "note":
            continue
        text, node = event["text"], event["node"]
        if chosen is None and text.startswith("accepts "):
            ballot, value = text.removeprefix("accepts ").split(":", 1)
            voters = accepted.setdefault((ballot, value), [])
            voters.append(node)
            if quorum.is_phase2_quorum(voters):
                chosen = (event["seq"], ballot, value, tuple(sorted(voters)))
        elif chosen is not None and text.startswith("promises "):
            ballot = text.removeprefix("promises ")
            if _ballot_key(ballot) <= _ballot_key(chosen[1]):
                continue
            voters = promised.setdefault(ballot, [])
            voters.append(node)
            if quorum.is_phase1_quorum(voters):
                common = sorted(set(voters) & set(chosen[3]))
                return Witness(
                    chosen_at=chosen[0],
                    value=chosen[2],
                    accepting_quorum=chosen[3],
                    promising_quorum=tuple(sorted(voters)),
                    witness=common[0],
                    later_ballot=ballot,
                )
    return None


def _ballot_key(text: str) -> tuple[int, int]:
    round_, node = text.split(".")
    return int(round_), int(node)


SCENARIOS: dict[str, tuple[Callable[[int], ScenarioResult], str]] = {
    "leader-crash": (leader_crash, "the fixed leader crashes: nobody can decide"),
    "split-brain": (split_brain, "failover in a partition elects two leaders"),
    "split-vote": (split_vote, "7 voters split 3 to 3 and the seventh crashes"),
    "tiebreak": (tiebreak, '"red wins ties" when the silent node was only slow'),
    "dueling-proposers": (dueling_proposers, "two Paxos proposers pre-empt each other"),
    "paxos-holds": (paxos_holds, "a chosen value survives its proposer's crash"),
    "replication-conflict": (
        replication_conflict,
        "two replicas accept one unique name for two users",
    ),
    "replication-consensus": (replication_consensus, "the same sign-ups, one row: consensus"),
}
