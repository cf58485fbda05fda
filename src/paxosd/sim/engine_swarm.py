"""Many seeded runs of the simulated cluster, in parallel processes, with one report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.runtime.variants import Variant
from paxosd.sim.cluster import SimResult, SimSpec, run


def spec_for(nodes: int, faults: frozenset[str], variant: str, clients: int = 6) -> SimSpec:
    """A run's spec; `ValueError` for an unknown variant (the message lists them)."""
    return SimSpec(
        nodes=nodes,
        clients=clients,
        faults=faults,
        variant=variant,
        config=EngineConfig(variant=Variant(variant).core),
    )


@dataclass(slots=True)
class SwarmReport:
    runs: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: SimResult, replay: str) -> None:
        self.runs += 1
        for key, count in result.operations.items():
            self.operations[key] = self.operations.get(key, 0) + count
        for key, count in result.faults.items():
            self.faults[key] = self.faults.get(key, 0) + count
        if result.violations:
            self.violations.append(
                {"seed": result.seed, "problems": result.violations, "replay": replay}
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "operations": dict(sorted(self.operations.items())),
            "faults": dict(sorted(self.faults.items())),
            "violations": self.violations,
        }


def replay_command(spec: SimSpec, seed: int) -> str:
    faults = ",".join(sorted(spec.faults)) or '""'
    return (
        f"paxosd sim --seeds 1 --seed {seed} --nodes {spec.nodes} --clients {spec.clients} "
        f"--faults {faults} --variant {spec.variant}"
    )


def _run(args: tuple[SimSpec, int]) -> SimResult:
    spec, seed = args
    result = run(spec, seed)
    if not result.violations:
        result.history = []  # the parent only needs histories of failing runs
    return result


def results(spec: SimSpec, seeds: range, jobs: int) -> Iterator[SimResult]:
    if jobs <= 1:
        for seed in seeds:
            yield _run((spec, seed))
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run, [(spec, seed) for seed in seeds], chunksize=4)


def swarm(
    spec: SimSpec,
    seeds: range,
    jobs: int = 1,
    progress: Callable[[SimResult], None] | None = None,
    stop_at_violation: bool = False,
) -> tuple[SwarmReport, list[SimResult]]:
    report = SwarmReport()
    failing: list[SimResult] = []
    for result in results(spec, seeds, jobs):
        report.add(result, replay_command(spec, result.seed))
        if result.violations:
            failing.append(result)
        if progress is not None:
            progress(result)
        if failing and stop_at_violation:
            break
    return report, failing


__all__ = ["SwarmReport", "replace", "replay_command", "spec_for", "swarm"]
