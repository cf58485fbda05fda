"""`paxosd lab check`: judge one algorithm by exhaustive exploration or by a seeded swarm.

The report has the shape documented for `--json`:
`{"algorithm", "config", "properties": {"agreement"|"validity"|"termination": "holds"|
"violated"|"unknown"}, "details", "fault_tolerance", "fault_tolerance_detail",
"counterexamples": {PROPERTY: {"steps", "trace", ...}}, "states_explored", "depth",
"depth_checked", "stopped", "runs", "start"}` ("start": with --change, the steps that led
to the state the search starts from).

One rule turns the three verdicts into the book's fourth property (`fault_tolerance`), for
`lab check`, `lab tour` and the coach alike: a property the search did not settle stays
"unknown", and so does fault tolerance unless a settled property already decides it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paxosd.check.consensus import PROPERTIES, Verdict
from paxosd.core.protocol import CoreConfig
from paxosd.core.types import Envelope
from paxosd.lab import tracefile
from paxosd.lab.algorithms import Algorithm
from paxosd.lab.values import values as value_names
from paxosd.sim.explorer import (
    Budget,
    Explorer,
    Step,
    memory_mb_max_default,
    states_max_default,
)
from paxosd.sim.swarm import FAULTS, RunSpec, swarm
from paxosd.sim.trace import Event, message_fields

EXPLORE_FAULTS = {"crash", "restart", "partition", "asymmetric", "loss", "duplicate", "reorder"}
DEFAULT_TIMING = {
    "leader": "bounded", "failover": "bounded", "majority": "bounded", "replication": "bounded",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CheckRequest:
    algorithm: Algorithm
    nodes: int = 3
    values: int = 2
    crashes: int = 1
    faults: frozenset[str] = frozenset({"crash"})
    variant: str = "correct"
    explore: bool = False
    runs: int = 200
    seed: int = 1
    rounds: int = 1
    timing: str | None = None
    states_max: int = states_max_default
    memory_mb_max: int | None = memory_mb_max_default
    # Explore on after the first Agreement or Validity violation (to judge Termination too);
    # by default the search ends there, with the shortest counterexample in hand.
    keep_going: bool = True
    # multipaxos: the voters an operator asks node 1 for (lab/membership.py: the search
    # starts once node 1 leads, with the change and the values just sent to it).
    change: tuple[int, ...] | None = None
    timeouts: int | None = None  # timer firings per explored run (None: any number)
    depth_max: int | None = None  # explore runs of up to this many steps

    def explored_values(self) -> list[Any]:
        """What the explorer proposes: the operator's change first, if any, then the values."""
        if self.change is None:
            return self.value_names()
        from paxosd.lab import membership  # the engine: loaded only when asked for

        return membership.values(self.change, self.value_names())

    def value_names(self) -> list[str]:
        """The values proposed, by the algorithm's story's names (red, blue... or alice, bob)."""
        return value_names(self.values, self.algorithm.value_names)

    def validate(self) -> None:
        if self.variant not in self.algorithm.variants:
            known = ", ".join(self.algorithm.variants)
            raise ValueError(
                f"{self.algorithm.name} has no variant {self.variant!r}; choose one of: {known}"
            )
        needed = self.algorithm.variant_nodes.get(self.variant)
        if needed is not None and self.nodes != needed:
            raise ValueError(
                f"the {self.variant} story is told on {needed} nodes: --nodes {needed}"
            )
        known_faults = EXPLORE_FAULTS if self.explore else set(FAULTS)
        unknown = sorted(self.faults - known_faults)
        if unknown:
            raise ValueError(
                f"unknown fault(s) {', '.join(unknown)}; choose from: "
                + ", ".join(sorted(known_faults))
            )
        if self.nodes < 1 or self.values < 1 or self.crashes < 0:
            raise ValueError("--nodes and --values must be at least 1, --crashes at least 0")
        if self.algorithm.name == "multipaxos" and not self.explore:
            raise ValueError(
                "multipaxos is checked by exploration here (--explore); for seeded runs of the "
                "whole engine under faults, use paxosd sim"
            )
        if self.explore and self.nodes > 5:
            raise ValueError("exhaustive exploration is for small clusters: use --nodes 5 or fewer")
        if self.states_max < 1 or (self.memory_mb_max is not None and self.memory_mb_max < 1):
            raise ValueError("--max-states and --max-memory-mb must be at least 1")
        if (self.timeouts is not None and self.timeouts < 0) or (
            self.depth_max is not None and self.depth_max < 0
        ):
            raise ValueError("--timeouts and --max-depth must be at least 0")
        if not self.explore and (self.timeouts is not None or self.depth_max is not None):
            raise ValueError("--timeouts and --max-depth bound the explorer: add --explore")
        if self.change is not None:
            self._validate_change(self.change)

    def _validate_change(self, voters: tuple[int, ...]) -> None:
        from paxosd.lab import membership

        if self.algorithm.name != "multipaxos" or not self.explore:
            raise ValueError("--change is a membership change of multipaxos, with --explore")
        members = range(1, self.nodes + 1)
        if not voters or any(v not in members for v in voters) or len(set(voters)) < len(voters):
            raise ValueError(f"--change names voters among the nodes 1..{self.nodes}, each once")
        if membership.leader not in voters:
            raise ValueError(
                f"node {membership.leader} leads when the change is asked and cannot remove "
                f"itself (the engine refuses: leadership is handed over first): keep it a voter"
            )
        if len(voters) == self.nodes:
            raise ValueError("--change must name other voters than the cluster's own")


@dataclass(slots=True)
class CheckReport:
    algorithm: str
    config: dict[str, Any]
    verdicts: dict[str, Verdict]
    counterexamples: dict[str, dict[str, Any]] = field(default_factory=dict)
    states_explored: int | None = None
    runs: int | None = None
    depth: int | None = None  # explored runs: the deepest level reached
    depth_checked: int | None = None  # explored runs: every run this long was checked
    stopped: str | None = None  # explored runs: why the search ended early, if it did
    summary: str = ""  # explored runs: how far the search got, in one line
    # Explored from a story's start (--change): the steps that led there, rendered.
    start: list[str] = field(default_factory=list)
    # Each counterexample in the lab's trace format (what --trace-out writes).
    event_traces: dict[str, list[Event]] = field(default_factory=dict)
    request: CheckRequest | None = None

    def trace_document(self) -> dict[str, Any]:
        """The counterexamples as the lab's one trace file (see `paxosd.lab.tracefile`)."""
        request = self.request
        assert request is not None
        config = {
            "algorithm": self.algorithm,
            "nodes": request.nodes,
            "values": request.values,
            "variant": request.variant,
            "crashes": request.crashes,
            "faults": sorted(request.faults),
            "ballots": request.rounds,
            "timing": request.timing,
        }
        model = "explored" if request.explore else "simulated"
        if not request.explore:
            config["seed"] = request.seed
        if request.change is not None:
            # The membership story: each trace is its whole run, from the cold start.
            config["change"] = list(request.change)
        return tracefile.document(
            model, config, title=f"{self.algorithm}: counterexamples",
            counterexamples=self.event_traces,
        )  # fmt: skip

    @property
    def exit_code(self) -> int:
        """0: fault tolerant as far as checked; 1: a property it needs is violated (a safety
        violation, or stuck); 3: no violation, but the search stopped before an answer."""
        return EXIT_CODES[self.fault_tolerance.status]

    @property
    def fault_tolerance(self) -> Verdict:
        return fault_tolerance(self.verdicts)

    def to_json(self) -> dict[str, Any]:
        tolerance = self.fault_tolerance
        return {
            "algorithm": self.algorithm,
            "config": self.config,
            "properties": {p: self.verdicts[p].status for p in PROPERTIES},
            "details": {p: self.verdicts[p].detail for p in PROPERTIES},
            "fault_tolerance": tolerance.status,
            "fault_tolerance_detail": tolerance.detail,
            "counterexamples": self.counterexamples,
            "states_explored": self.states_explored,
            "depth": self.depth,
            "depth_checked": self.depth_checked,
            "stopped": self.stopped,
            "runs": self.runs,
            "start": self.start,
        }


EXIT_CODES = {"holds": 0, "violated": 1, "unknown": 3}


def fault_tolerance(verdicts: dict[str, Verdict]) -> Verdict:
    """The book's Fault Tolerance from the three verdicts: Agreement and Validity despite any
    faults, Termination despite some. A livelock does not count against it: no algorithm can
    guarantee termination (FLP), so the bar is that a decision always stays reachable.

    Violated as soon as a settled verdict breaks it (a safety violation, or stuck), whatever
    else is unknown; holds only if all three are settled in its favour; otherwise unknown. A
    verdict the search did not reach never counts for or against."""
    safety = [verdicts[p] for p in ("agreement", "validity")]
    termination = verdicts["termination"]
    broken = [v.property.capitalize() for v in safety if v.status == "violated"]
    if termination.status == "violated" and termination.kind != "livelock":
        broken.append("Termination (stuck)")
    if broken:
        return Verdict("fault_tolerance", "violated", f"{' and '.join(broken)} violated")
    unsettled = [v.property.capitalize() for v in safety if v.status != "holds"]
    if termination.status == "unknown":
        unsettled.append("Termination")
    if unsettled:
        return Verdict(
            "fault_tolerance", "unknown",
            f"{' and '.join(unsettled)} not settled by the search: nothing decided either way",
        )  # fmt: skip
    if termination.status == "holds":
        return Verdict("fault_tolerance", "holds", "all three hold under these faults")
    return Verdict(
        "fault_tolerance", "holds",
        "safe under every fault and never stuck; only guaranteed termination is given up, as "
        "FLP says it must be",
    )  # fmt: skip


def fault_tolerance_of_run(verdicts: dict[str, Verdict]) -> Verdict:
    """The same rule for one simulated run (`lab scenario`, `lab tour`): a run can show that
    Agreement or Validity breaks, but not that anything holds in every run, nor that a run
    which ended undecided would never have decided; so only the run's safety violations
    count, and everything else stays unknown."""
    seen = {
        prop: verdict if prop != "termination" and verdict.status == "violated"
        else Verdict(prop, "unknown")
        for prop, verdict in verdicts.items()
    }  # fmt: skip
    found = fault_tolerance(seen)
    if found.status == "unknown":
        return Verdict(
            "fault_tolerance", "unknown",
            "one run breaks no safety property; lab check --explore judges every run",
        )  # fmt: skip
    return found


def explore_budget(request: CheckRequest) -> tuple[Budget, CoreConfig]:
    """The explorer's fault budget and the cores' timer settings for a request."""
    faults = request.faults
    timing = request.timing or DEFAULT_TIMING.get(request.algorithm.name, "async")
    budget = Budget(
        nodes=request.nodes,
        values=len(request.explored_values()),
        crashes=request.crashes if ("crash" in faults or "restart" in faults) else 0,
        restarts="restart" in faults,
        loss="loss" in faults,
        duplicate="duplicate" in faults,
        partitions=1 if faults & {"partition", "asymmetric"} else 0,
        asymmetric="asymmetric" in faults,
        timing=timing,
        network="grow" if {"loss", "duplicate"} <= faults else "consume",
        states_max=request.states_max,
        memory_mb_max=request.memory_mb_max,
        timeouts=request.timeouts,
        depth_max=request.depth_max,
    )
    # One tick is one timeout: timers are nondeterministic in the explorer anyway.
    config = CoreConfig(
        heartbeat_ticks=1,
        suspect_after_ticks=2,
        retry_after_ticks=1,
        backoff_ticks_max=1,
        rounds_max=request.rounds,
        learner_query_ticks=None,
        variant=request.variant,
    )
    return budget, config


def run_check(request: CheckRequest, progress: Callable[[int], None] | None = None) -> CheckReport:
    request.validate()
    if request.explore:
        return _explore(request, progress)
    return _swarm(request, progress)


def _explore(request: CheckRequest, progress: Callable[[int], None] | None) -> CheckReport:
    budget, config = explore_budget(request)
    values = request.explored_values()
    stop_on = frozenset() if request.keep_going else frozenset({"agreement", "validity"})
    if request.change is None:
        explorer = Explorer(request.algorithm.factory, budget, config, values)
        exploration = explorer.explore(progress, stop_on=stop_on)
        setup: list[Step] = []
    else:
        from paxosd.lab import membership

        proposers = [membership.leader] * len(values)
        explorer = Explorer(request.algorithm.factory, budget, config, values, proposers=proposers)
        start, setup = membership.story(explorer)
        exploration = explorer.explore(progress, stop_on=stop_on, start=start, livelock=False)
        # Every node decided slot 1 before the story starts, so "every live node has
        # decided" holds from the first state: judged that way, Termination would hold
        # whatever the engine did. It is not this story's question.
        exploration.verdicts["termination"] = Verdict(
            "termination", "unknown", "not judged in this story: every node has decided slot 1 "
            "when it starts (whether red is decided later is not checked)",
        )  # fmt: skip
    report = CheckReport(
        request.algorithm.name,
        {
            "mode": "explore",
            "nodes": request.nodes,
            "values": request.value_names(),
            "crashes": budget.crashes,
            "faults": sorted(request.faults),
            "variant": request.variant,
            "timing": budget.timing,
            "network": budget.network,
            "ballots_per_proposer": request.rounds,
            "timeouts": request.timeouts,
            "depth_max": request.depth_max,
            "change": None if request.change is None else str(values[0]),
            "complete": exploration.complete,
        },
        exploration.verdicts,
        states_explored=len(exploration.graph),
        depth=exploration.depth,
        depth_checked=exploration.depth_checked,
        stopped=exploration.stopped,
        summary=exploration.summary(),
        request=request,
    )
    if setup:
        report.start = [step.render() for step in setup]
    for prop, steps in exploration.counterexamples.items():
        # The trace a diagram draws is the whole run, the story's start included (its
        # messages were sent there).
        report.event_traces[prop] = steps_as_trace(setup + steps)
        report.counterexamples[prop] = {
            "steps": len(steps),
            "trace": [step.to_json() for step in steps],
        }
    return report


def swarm_spec(request: CheckRequest) -> RunSpec:
    config = CoreConfig(variant=request.variant)
    return RunSpec(
        request.algorithm.factory,
        request.nodes,
        tuple(request.value_names()),
        request.crashes,
        request.faults,
        config,
    )


def replay_command(request: CheckRequest, seed: int) -> str:
    faults = ",".join(sorted(request.faults)) or '""'
    return (
        f"paxosd lab check {request.algorithm.name} --nodes {request.nodes} "
        f"--values {request.values} --crashes {request.crashes} --faults {faults} "
        f"--variant {request.variant} --runs 1 --seed {seed}"
    )


def _swarm(request: CheckRequest, progress: Callable[[int], None] | None) -> CheckReport:
    result = swarm(swarm_spec(request), request.runs, request.seed, progress)
    report = CheckReport(
        request.algorithm.name,
        {
            "mode": "swarm",
            "nodes": request.nodes,
            "values": request.value_names(),
            "crashes": request.crashes,
            "faults": sorted(request.faults),
            "variant": request.variant,
            "seed": request.seed,
            "faults_injected": dict(sorted(result.fault_counts.items())),
        },
        result.verdicts,
        runs=request.runs,
        request=request,
    )
    for prop, run in result.counterexamples.items():
        report.event_traces[prop] = run.trace
        report.counterexamples[prop] = {
            "steps": len(run.trace),
            "seed": run.seed,
            "replay": replay_command(request, run.seed),
            "trace": run.trace,
        }
    return report


def steps_as_trace(steps: list[Step]) -> list[Event]:
    """An explored run as trace events (time = step number), so the same diagrams work.

    A message gets its id when first sent; every delivery of it (there may be several under the
    `grow` network model) refers to that id."""
    events: list[Event] = []
    message_ids: dict[Envelope, int] = {}

    def log(t: int, ev: str, **fields: Any) -> None:
        events.append({"t": t, "seq": len(events), "ev": ev, **fields})

    def fields(env: Envelope) -> dict[str, Any]:
        return message_fields(env, message_ids.setdefault(env, len(message_ids) + 1))

    for number, step in enumerate(steps, 1):
        env = step.envelope
        match step.kind:
            case "deliver":
                assert env is not None
                log(number, "recv", **fields(env))
            case "duplicate":  # delivered, and the network keeps a copy to deliver again
                assert env is not None
                log(number, "dup", **fields(env))
                log(number, "recv", **fields(env))
            case "drop":
                assert env is not None
                log(number, "drop", why="loss", **fields(env))
            case "propose":
                log(number, "propose", node=step.node, value=step.value)
            case "timeout" | "crash" | "restart":
                log(number, step.kind, node=step.node)
            case "partition":
                log(number, "cut", links=sorted(list(link) for link in step.links))
            case "heal":
                log(number, "heal", links=[])
            case "tick":
                log(number, "tick")
        for node, note in step.notes:
            if note.startswith("decides "):
                log(number, "decide", node=node, value=note.removeprefix("decides "))
            else:
                log(number, "note", node=node, text=note)
        for sent in step.sent:
            log(number, "send", **fields(sent))
    return events
