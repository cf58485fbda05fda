"""Many seeded runs of the simulated cluster, in parallel processes, with one report.

A run that raises (an assertion of the engine's invariants, a command the state machine
refused to build) is a failing run like one a checker judged: the report gives its seed, the
exception and the command that replays it.
"""

from __future__ import annotations

import itertools
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.runtime.variants import Variant
from paxosd.service.sql.machine import SQL_VARIANTS
from paxosd.sim.cluster import WORKLOADS, SimResult, SimSpec, run, watchers_default
from paxosd.sim.reach import MECHANISMS


def spec_for(
    nodes: int,
    faults: frozenset[str],
    variant: str,
    clients: int = 6,
    draws: bool = True,
    watchers: int = watchers_default,
    workloads: tuple[str, ...] | None = None,
) -> SimSpec:
    """A run's spec; `ValueError` for an unknown variant (the message lists them). A planted
    bug of the SQL database adds the sql workload (the default workloads do not use it)."""
    if workloads is None:
        workloads = WORKLOADS
        if variant in SQL_VARIANTS:
            workloads = (*workloads, "sql")
    return SimSpec(
        workloads=workloads,
        nodes=nodes,
        clients=clients,
        faults=faults,
        variant=variant,
        watchers=watchers,
        config=EngineConfig(variant=Variant(variant).core),
        draws=draws,
    )


@dataclass(slots=True)
class SwarmReport:
    runs: int = 0
    operations: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    # Mechanism -> (total count, runs that reached it at least once).
    mechanisms: dict[str, list[int]] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: SimResult, replay: str) -> None:
        self.runs += 1
        for key, count in result.operations.items():
            self.operations[key] = self.operations.get(key, 0) + count
        for key, count in result.faults.items():
            self.faults[key] = self.faults.get(key, 0) + count
        for key, count in result.mechanisms.items():
            total = self.mechanisms.setdefault(key, [0, 0])
            total[0] += count
            total[1] += count > 0
        if result.violations:
            self.violations.append(
                {
                    "seed": result.seed,
                    "problems": result.violations,
                    "replay": replay,
                    "faults_drawn": result.drawn.get("faults"),
                }
            )

    def reached(self, mechanism: str) -> int:
        """How many runs reached `mechanism` at least once."""
        return self.mechanisms.get(mechanism, [0, 0])[1]

    def to_json(self) -> dict[str, Any]:
        order = {name: index for index, name in enumerate(MECHANISMS)}
        mechanisms = sorted(self.mechanisms.items(), key=lambda item: order.get(item[0], 99))
        return {
            "runs": self.runs,
            "operations": dict(sorted(self.operations.items())),
            "faults": dict(sorted(self.faults.items())),
            "mechanisms": {k: {"total": t, "runs": r} for k, (t, r) in mechanisms},
            "violations": self.violations,
        }


def replay_command(spec: SimSpec, seed: int) -> str:
    faults = ",".join(sorted(spec.faults)) or '""'
    command = (
        f"paxosd sim --seeds 1 --seed {seed} --nodes {spec.nodes} --clients {spec.clients} "
        f"--faults {faults} --variant {spec.variant}"
    )
    if not spec.draws:
        command += " --fixed"
    if spec.workloads != spec_for(spec.nodes, spec.faults, spec.variant).workloads:
        command += " --workloads " + ",".join(spec.workloads)
    if spec.watchers != watchers_default:
        command += f" --watchers {spec.watchers}"
    return command


def _run(args: tuple[SimSpec, int]) -> SimResult:
    spec, seed = args
    try:
        result = run(spec, seed)
    except Exception as error:  # a failing run, with its seed: never a crashed swarm
        frames = traceback.extract_tb(error.__traceback__)
        ours = [frame for frame in frames if "/paxosd/" in frame.filename]
        where = (ours or frames)[-1]
        problem = (
            f"the run raised {type(error).__name__}: {error} "
            f"(at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
        )
        return SimResult(seed, {}, {}, [problem], [], {})
    if not result.violations:
        result.history = []  # the parent only needs histories of failing runs
    return result


def results(spec: SimSpec, seeds: range, jobs: int) -> Iterator[SimResult]:
    """The runs' results in seed order. With several processes, only a few runs are in
    flight at a time, so a caller that stops early (`--stop`) does not wait for the rest."""
    if jobs <= 1:
        for seed in seeds:
            yield _run((spec, seed))
        return
    pending = iter(seeds)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        window: deque[Future[SimResult]] = deque()
        try:
            for seed in itertools.islice(pending, 2 * jobs):
                window.append(pool.submit(_run, (spec, seed)))
            while window:
                result = window.popleft().result()
                for seed in itertools.islice(pending, 1):
                    window.append(pool.submit(_run, (spec, seed)))
                yield result
        finally:
            for future in window:
                future.cancel()


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
