"""A play session: every state of a run the learner drives, kept as a tree of branches.

Theory of operation. A state is an explorer state (`paxosd.sim.explorer.ExState`): the real
cores of the chosen algorithm, the messages in flight, the faults so far. The actions offered
in a state are exactly the explorer's successors of it, under a generous fault budget (any
node may crash and restart, any message may be delivered, dropped or duplicated, any split
of the nodes may be partitioned, any timer may fire), so a learner's run is always a run the
explorer could have taken, and nothing is re-implemented for the page.

The session keeps every state it reached as a `Point` and every line of play as a branch: a
list of points from the initial state. The cursor is a position on the current branch. Going
back moves the cursor; acting from an earlier position forks a new branch and keeps the old
one until it is discarded. Every change bumps `version`; a request made against an older
version is refused (`Stale`), so two tabs on one session never act on a state they have not
seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from paxosd.core.types import Envelope, describe
from paxosd.lab import algorithms
from paxosd.lab.check import CheckRequest, explore_budget, steps_as_trace
from paxosd.sim.explorer import Explorer, ExState, Step
from paxosd.sim.trace import Event, family_of

__all__ = ["BadAction", "PlayConfig", "Point", "Session", "Stale", "action_id"]

# Limits.
nodes_max = 7
explore_nodes_max = 5  # lab check --explore's limit (the coach bounds its search in time instead)
values_max = 4
ballots_max = 6
steps_max = 2_000  # points on one branch
points_max = 20_000  # states kept by one session, over all branches
branches_max = 50
fault_budget_play = 10_000  # "unlimited" crashes and partitions for the learner


class BadAction(ValueError):
    """The request names something that does not exist here (an unknown action or step)."""


class Stale(Exception):
    """The request was made against an older version of the session."""

    def __init__(self, version: int, current: int) -> None:
        super().__init__(
            f"this request was made at version {version}, but the session is at version "
            f"{current} (another tab changed it): reload the session and try again"
        )
        self.current = current


@dataclass(frozen=True, slots=True)
class PlayConfig:
    """What is played, and the configuration the coach judges (as `paxosd lab check`)."""

    algorithm: str
    nodes: int = 3
    values: int = 2
    variant: str = "correct"
    crashes: int = 1
    faults: frozenset[str] = frozenset({"crash"})
    ballots: int = 2
    timing: str | None = None
    # multipaxos: the voters an operator asks node 1 for (`lab check --change`): the change
    # is one more value to propose, at node 1 like every value.
    change: tuple[int, ...] | None = None

    def validate(self) -> None:
        algorithms.get(self.algorithm)  # ValueError naming the choices
        if not 1 <= self.nodes <= nodes_max:
            raise ValueError(f"nodes must be between 1 and {nodes_max}, not {self.nodes}")
        if not 1 <= self.values <= values_max:
            raise ValueError(f"values must be between 1 and {values_max}, not {self.values}")
        if not 1 <= self.ballots <= ballots_max:
            raise ValueError(f"ballots must be between 1 and {ballots_max}, not {self.ballots}")
        if self.timing not in (None, "async", "bounded"):
            raise ValueError(f"timing must be async or bounded, not {self.timing!r}")
        # Faults, variant and crashes as lab check judges them (a larger cluster than lab check
        # explores can be played and coached: the coach's answer says how deep it checked).
        replace(self.request(), nodes=min(self.nodes, explore_nodes_max)).validate()

    def request(self) -> CheckRequest:
        """The `lab check --explore` request this configuration corresponds to."""
        return CheckRequest(
            algorithms.get(self.algorithm), nodes=self.nodes, values=self.values,
            crashes=self.crashes, faults=self.faults, variant=self.variant, explore=True,
            rounds=self.ballots, timing=self.timing, change=self.change,
        )  # fmt: skip

    def command(self) -> str:
        """The CLI command that checks the same configuration."""
        faults = ",".join(sorted(self.faults)) or '""'
        timing = f" --timing {self.timing}" if self.timing else ""
        if self.change is not None:
            timing += f" --change {','.join(map(str, self.change))}"
        return (
            f"paxosd lab check {self.algorithm} --explore --nodes {self.nodes} "
            f"--values {self.values} --crashes {self.crashes} --faults {faults} "
            f"--variant {self.variant} --ballots {self.ballots}{timing}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "nodes": self.nodes,
            "values": self.values,
            "variant": self.variant,
            "crashes": self.crashes,
            "faults": sorted(self.faults),
            "ballots": self.ballots,
            "timing": self.timing,
            "change": None if self.change is None else list(self.change),
        }

    @classmethod
    def from_json(cls, data: Any) -> PlayConfig:
        """From JSON (a request body, or a trace file's config); ValueError if malformed."""
        if not isinstance(data, dict):
            raise ValueError("the configuration must be a JSON object")
        known = {"algorithm", "nodes", "values", "variant", "crashes", "faults", "ballots",
                 "timing", "change"}  # fmt: skip
        fields: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        if not isinstance(fields.get("algorithm"), str):
            raise ValueError('"algorithm" is required: one of ' + ", ".join(algorithms.ALGORITHMS))
        for name in ("nodes", "values", "crashes", "ballots"):
            if name in fields and (
                not isinstance(fields[name], int) or isinstance(fields[name], bool)
            ):
                raise ValueError(f'"{name}" must be an integer')
        if isinstance(fields.get("values"), list):  # a check report lists the value names
            fields["values"] = len(fields["values"])
        faults = fields.get("faults", ["crash"])
        if isinstance(faults, str):
            faults = [f.strip() for f in faults.split(",") if f.strip()]
        if not isinstance(faults, list) or not all(isinstance(f, str) for f in faults):
            raise ValueError('"faults" must be a list of fault names')
        fields["faults"] = frozenset(faults)
        for name in ("variant",):
            if name in fields and not isinstance(fields[name], str):
                raise ValueError(f'"{name}" must be a string')
        change = fields.get("change")
        if change is not None:
            if not isinstance(change, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in change
            ):
                raise ValueError('"change" must be a list of node ids (the voters asked for)')
            fields["change"] = tuple(change)
        config = cls(**fields)
        config.validate()
        return config


def action_id(step: Step, message_ids: dict[Envelope, int]) -> str:
    """A stable name for an action, as the page and the API use it."""
    match step.kind:
        case "deliver" | "duplicate" | "drop":
            assert step.envelope is not None
            return f"{step.kind}:{message_ids[step.envelope]}"
        case "propose":
            return f"propose:{step.node}:{step.value}"
        case "timeout" | "crash" | "restart":
            return f"{step.kind}:{step.node}"
        case "partition":
            return "partition:" + _sides(step.links)
        case _:
            return step.kind  # tick, heal


def _sides(links: frozenset[tuple[int, int]]) -> str:
    """A partition's links as its sides ("1|2,3"), or the one-way links ("1>2,1>3")."""
    nodes = sorted({n for link in links for n in link})
    if not nodes:
        return ""
    first = nodes[0]
    side = sorted({first} | {n for n in nodes if (first, n) not in links and n != first})
    other = [n for n in nodes if n not in side]
    two_way = {(a, b) for a in side for b in other} | {(b, a) for a in side for b in other}
    if links == two_way:
        return ",".join(map(str, side)) + "|" + ",".join(map(str, other))
    return ",".join(f"{a}>{b}" for a, b in sorted(links))


@dataclass(slots=True)
class Point:
    """One state of the run and how it was reached."""

    state: ExState
    parent: int  # index of the previous point; -1 for the initial state
    step: Step | None
    crashes_used: int = 0
    partitions_used: int = 0


@dataclass(slots=True)
class Action:
    id: str
    step: Step
    successor: ExState


@dataclass(slots=True)
class Branch:
    points: list[int]
    forked_at: int = 0  # the step this branch left its parent branch at


@dataclass
class Session:
    """One learner's run of one algorithm."""

    config: PlayConfig
    id: str = ""
    version: int = 0
    points: list[Point] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)
    current: int = 0
    cursor: int = 0
    tour: Any = None  # a tours.TourProgress, when the session is a guided tour
    coach_memory: Any = field(default=None, repr=False)  # a coach.CoachMemory, once asked

    def __post_init__(self) -> None:
        self.config.validate()
        request = self.config.request()
        self.coach_budget, self.core_config = explore_budget(request)
        self.values = request.explored_values()  # the operator's change first, if any
        play_budget = replace(
            self.coach_budget, crashes=fault_budget_play, restarts=True, loss=True,
            duplicate=True, partitions=fault_budget_play, asymmetric=False, timing="async",
            network="consume",
        )  # fmt: skip
        self.factory = request.algorithm.factory
        proposers = None if self.config.change is None else [1] * len(self.values)
        self.explorer = Explorer(
            self.factory, play_budget, self.core_config, self.values, proposers=proposers
        )
        self.message_ids: dict[Envelope, int] = {}
        self._next_message = itertools.count(1)
        self._actions: dict[int, list[Action]] = {}
        if not self.points:
            self.points.append(Point(self.explorer.initial(), -1, None))
            self.branches.append(Branch([0]))

    # -- where we are -----------------------------------------------------------------------

    @property
    def branch(self) -> Branch:
        return self.branches[self.current]

    @property
    def here(self) -> int:
        """The point at the cursor."""
        return self.branch.points[self.cursor]

    @property
    def state(self) -> ExState:
        return self.points[self.here].state

    def steps(self, upto: int | None = None) -> list[Step]:
        """The steps of the current branch, up to the cursor (or to `upto`)."""
        end = self.cursor if upto is None else upto
        found: list[Step] = []
        for index in self.branch.points[1 : end + 1]:
            step = self.points[index].step
            assert step is not None
            found.append(step)
        return found

    def trace(self) -> list[Event]:
        """The current branch up to the cursor, in the lab's trace format."""
        return steps_as_trace(self.steps())

    # -- what can be done -------------------------------------------------------------------

    def message_id(self, envelope: Envelope) -> int:
        known = self.message_ids.get(envelope)
        if known is None:
            known = self.message_ids[envelope] = next(self._next_message)
        return known

    def actions(self, point: int | None = None) -> list[Action]:
        """Every action enabled at a point (the cursor's by default), in the explorer's order,
        plus "time passes for everyone" (a tick of every live node)."""
        index = self.here if point is None else point
        cached = self._actions.get(index)
        if cached is not None:
            return cached
        state = self.points[index].state
        for envelope in sorted(state.network, key=_order):
            self.message_id(envelope)
        found: list[Action] = []
        seen: set[str] = set()
        for step, successor in itertools.chain(
            self.explorer.successors(state), self.explorer.tick_all(state)
        ):
            for envelope in step.sent:
                self.message_id(envelope)
            name = action_id(step, self.message_ids)
            if name in seen:  # tick_all repeats a lone timeout's effect under another name
                continue
            seen.add(name)
            found.append(Action(name, step, successor))
        self._actions[index] = found
        return found

    def in_flight(self) -> Iterator[Envelope]:
        yield from sorted(self.state.network, key=lambda e: self.message_id(e))

    # -- changes ----------------------------------------------------------------------------

    def _check(self, version: int | None) -> None:
        if version is not None and version != self.version:
            raise Stale(version, self.version)

    def apply(self, name: str, version: int | None = None) -> Step:
        """Take an action at the cursor. From an earlier step this forks a new branch."""
        self._check(version)
        chosen = next((a for a in self.actions() if a.id == name), None)
        if chosen is None:
            raise BadAction(
                f"no action {name!r} at step {self.cursor}: it may belong to another state "
                "(reload the session) or name a message that is not in flight"
            )
        if len(self.points) >= points_max:
            raise BadAction(f"this session holds {points_max:,} states: start a new one")
        if self.cursor >= steps_max:
            raise BadAction(f"a branch holds at most {steps_max:,} steps")
        here = self.points[self.here]
        step = chosen.step
        point = Point(
            chosen.successor,
            self.here,
            step,
            here.crashes_used + (step.kind == "crash"),
            here.partitions_used + (step.kind == "partition"),
        )
        self.points.append(point)
        number = len(self.points) - 1
        if self.cursor < len(self.branch.points) - 1:
            self._new_branch()
        self.branch.points.append(number)
        self.cursor += 1
        self.version += 1
        return step

    def apply_all(self, specs: list[dict[str, Any]], version: int | None = None) -> None:
        """Take a list of steps, each given as a (partial) step spec, one after another."""
        self._check(version)
        for spec in specs:
            self.apply(self.find(spec))

    def find(self, spec: dict[str, Any]) -> str:
        """The id of the first action at the cursor whose step matches every key of `spec`
        (see `step_spec`): how tours, the coach's paths and imported traces name actions."""
        for action in self.actions():
            full = step_spec(action.step)
            if all(full.get(key) == value for key, value in spec.items()):
                return action.id
        wanted = ", ".join(f"{k}={v}" for k, v in spec.items())
        raise BadAction(f"step {self.cursor + 1} ({wanted}) is not possible here")

    def goto(self, step: int, version: int | None = None) -> None:
        self._check(version)
        if not 0 <= step < len(self.branch.points):
            raise BadAction(
                f"no step {step}: this branch has steps 0 to {len(self.branch.points) - 1}"
            )
        if step != self.cursor:
            self.cursor = step
            self.version += 1

    def fork(self, version: int | None = None) -> int:
        """A new branch from the cursor, made current; the old one is kept."""
        self._check(version)
        self._new_branch()
        self.version += 1
        return self.current

    def _new_branch(self) -> None:
        if len(self.branches) >= branches_max:
            raise BadAction(f"a session holds at most {branches_max} branches: discard one")
        self.branches.append(Branch(self.branch.points[: self.cursor + 1], self.cursor))
        self.current = len(self.branches) - 1

    def switch(self, branch: int, version: int | None = None) -> None:
        self._check(version)
        if not 0 <= branch < len(self.branches):
            raise BadAction(f"no branch {branch}: there are {len(self.branches)}")
        self.current = branch
        self.cursor = len(self.branch.points) - 1
        self.version += 1

    def discard(self, branch: int, version: int | None = None) -> None:
        """Forget a branch (its states stay reachable from any branch that shares them)."""
        self._check(version)
        if not 0 <= branch < len(self.branches):
            raise BadAction(f"no branch {branch}: there are {len(self.branches)}")
        if len(self.branches) == 1:
            raise BadAction("the only branch cannot be discarded")
        del self.branches[branch]
        if self.current == branch:
            self.current = max(0, branch - 1)
            self.cursor = len(self.branch.points) - 1
        elif self.current > branch:
            self.current -= 1
        self.version += 1

    # -- for the coach ----------------------------------------------------------------------

    def coach_state(self) -> ExState:
        """The cursor's state with the fault budget the coach (and `lab check`) allows,
        less what this run has already spent."""
        point = self.points[self.here]
        return point.state.but(
            crashes_left=max(0, self.coach_budget.crashes - point.crashes_used),
            partitions_left=max(0, self.coach_budget.partitions - point.partitions_used),
        )


def step_spec(step: Step) -> dict[str, Any]:
    """A step as plain data: what was done, without what it caused."""
    spec: dict[str, Any] = {"kind": step.kind}
    if step.node:
        spec["node"] = step.node
    if step.value is not None:
        spec["value"] = step.value
    if step.envelope is not None:
        spec.update(src=step.envelope.src, dst=step.envelope.dst, msg=describe(step.envelope.msg))
    if step.links:
        spec["links"] = sorted(list(link) for link in step.links)
    return spec


def _order(envelope: Envelope) -> tuple[int, int, str]:
    return (envelope.src, envelope.dst, repr(envelope.msg))


def message_view(envelope: Envelope, ident: int) -> dict[str, Any]:
    return {
        "id": ident,
        "src": envelope.src,
        "dst": envelope.dst,
        "msg": describe(envelope.msg),
        "family": family_of(envelope.msg),
    }
