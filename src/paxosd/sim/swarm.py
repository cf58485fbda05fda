"""Seeded random runs: many simulated executions, each with its own fault schedule.

Theory of operation. Run number i uses seed `seed + i`, so any run can be replayed alone with
`--runs 1 --seed S`. A run has two phases. In the safety phase (the first `faults_ms`) values
are proposed and faults strike on a schedule drawn from the run's generator: crashes (and, if
allowed, restarts), partitions (symmetric or one-way), message loss, duplication, reordering,
long delays and slow nodes. Then faults stop: links heal, loss and duplication end, slow nodes
recover and nodes that may restart do so; the liveness phase lasts `heal_ms`. Agreement and
Validity are judged over the whole run, Termination at its end.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from paxosd.check.consensus import (
    PROPERTIES,
    Verdict,
    check_agreement,
    check_termination,
    check_validity,
)
from paxosd.core.protocol import CoreConfig, CoreFactory
from paxosd.core.types import Envelope
from paxosd.sim.trace import Event
from paxosd.sim.world import NetworkConfig, Outcome, World

FAULTS = {
    "crash": "nodes crash and stay down (at most --crashes at once)",
    "restart": "crashed nodes come back from their durable state",
    "partition": "the cluster splits into two sides for a while",
    "asymmetric": "a one-way partition: a side hears the other but cannot answer",
    "loss": "messages are lost (5%)",
    "duplicate": "messages are delivered twice (5%)",
    "reorder": "message delays vary widely, so messages overtake each other",
    "delay": "some messages take 10 to 30 times longer than usual",
    "slow": "a node runs 5 to 20 times slower for a while",
}

faults_ms_default = 1_000.0
heal_ms_default = 4_000.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that determines one simulated run."""

    factory: CoreFactory
    nodes: int
    values: tuple[Any, ...]
    crashes: int
    faults: frozenset[str]
    config: CoreConfig
    faults_ms: float = faults_ms_default
    heal_ms: float = heal_ms_default


@dataclass(slots=True)
class RunResult:
    seed: int
    verdicts: dict[str, Verdict]
    outcome: Outcome

    @property
    def trace(self) -> list[Event]:
        return self.outcome.trace

    def violated(self) -> list[str]:
        return [p for p, v in self.verdicts.items() if v.status == "violated"]


@dataclass(slots=True)
class SwarmResult:
    runs: int
    verdicts: dict[str, Verdict]
    counterexamples: dict[str, RunResult] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    fault_counts: dict[str, int] = field(default_factory=dict)


def run_once(spec: RunSpec, seed: int) -> RunResult:
    """One seeded run: the same spec and seed always give the same trace."""
    rng = random.Random(seed)
    faults = spec.faults
    network = NetworkConfig(
        delay_ms_min=1.0,
        delay_ms_max=40.0 if "reorder" in faults else 5.0,
        loss=0.05 if "loss" in faults else 0.0,
        duplicate=0.05 if "duplicate" in faults else 0.0,
    )
    world = World(spec.factory, spec.nodes, seed, spec.config, network)
    members = list(world.members)
    world.phase("safety")
    for index, value in enumerate(spec.values):
        node = members[index % len(members)]
        world.at(rng.uniform(0, 50), partial(world.propose, node, value))
    if "delay" in faults:
        world.delay_rules.append(_long_delays(rng))
    _schedule_faults(world, rng, spec)
    world.run(spec.faults_ms)
    _stop_faults(world, spec)
    world.run(spec.faults_ms + spec.heal_ms)
    outcome = world.outcome()
    return RunResult(seed, judge(outcome), outcome)


def judge(outcome: Outcome) -> dict[str, Verdict]:
    proposers = {node for _, node, _ in outcome.proposals}
    return {
        "agreement": check_agreement(outcome.decisions),
        "validity": check_validity(outcome.decisions, [v for _, _, v in outcome.proposals]),
        "termination": check_termination(outcome.decisions, outcome.live, proposers),
    }


def swarm(
    spec: RunSpec,
    runs: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> SwarmResult:
    """Run `runs` seeds; keep, per violated property, the shortest failing run."""
    result = SwarmResult(runs, {})
    for i in range(runs):
        run = run_once(spec, seed + i)
        for fault, count in run.outcome.fault_counts.items():
            result.fault_counts[fault] = result.fault_counts.get(fault, 0) + count
        for prop in run.violated():
            result.violations[prop] = result.violations.get(prop, 0) + 1
            best = result.counterexamples.get(prop)
            if best is None or len(run.trace) < len(best.trace):
                result.counterexamples[prop] = run
        if progress is not None:
            progress(i + 1)
    for prop in PROPERTIES:
        failed = result.violations.get(prop, 0)
        if failed:
            example = result.counterexamples[prop]
            detail = f"{failed} of {runs} runs; shortest: seed {example.seed}: "
            detail += example.verdicts[prop].detail
            result.verdicts[prop] = Verdict(prop, "violated", detail)
        else:
            result.verdicts[prop] = Verdict(prop, "holds", f"in all {runs} runs")
    return result


def _long_delays(rng: random.Random) -> Callable[[Envelope, float], float | None]:
    def rule(envelope: Envelope, now: float) -> float | None:
        if rng.random() < 0.05:
            return rng.uniform(50.0, 150.0)
        return None

    return rule


def _schedule_faults(world: World, rng: random.Random, spec: RunSpec) -> None:
    faults, horizon = spec.faults, spec.faults_ms
    members = list(world.members)
    if "crash" in faults and spec.crashes:
        victims = rng.sample(members, min(spec.crashes, len(members)))
        for node in victims:
            down_at = rng.uniform(0, horizon * 0.8)
            world.at(down_at, partial(world.crash, node))
            if "restart" in faults:
                up_at = rng.uniform(down_at, horizon)
                world.at(up_at, partial(world.restart, node))
    if "partition" in faults or "asymmetric" in faults:
        for _ in range(rng.randint(1, 3)):
            start = rng.uniform(0, horizon * 0.8)
            end = rng.uniform(start, horizon)
            side = rng.sample(members, rng.randint(1, len(members) // 2))
            other = [m for m in members if m not in side]
            one_way = "asymmetric" in faults and ("partition" not in faults or rng.random() < 0.5)
            links = _links(side, other, one_way)
            world.at(start, partial(world.cut, links))
            world.at(end, world.heal)
    if "slow" in faults:
        node = rng.choice(members)
        start = rng.uniform(0, horizon * 0.5)
        factor = float(rng.randint(5, 20))
        world.at(start, partial(world.slow, node, factor))
        world.at(rng.uniform(start, horizon), partial(world.slow, node, 1.0))


def _links(side: Iterable[int], other: Iterable[int], one_way: bool) -> list[tuple[int, int]]:
    there = [(a, b) for a in side for b in other]
    if one_way:
        return there
    return there + [(b, a) for a, b in there]


def _stop_faults(world: World, spec: RunSpec) -> None:
    world.phase("liveness")
    world.heal()
    world.network = NetworkConfig()
    world.delay_rules.clear()
    for node in world.members:
        if world.slowness[node] != 1.0:
            world.slow(node, 1.0)
    if "restart" in spec.faults:
        for node in world.members:
            world.restart(node)
