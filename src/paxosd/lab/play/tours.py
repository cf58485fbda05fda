"""Guided tours of the book's chapters: each sets a scene, asks the learner to act, and checks.

A tour is a list of stages. A stage says something, may take some steps itself to set the
scene (`setup`), and may give the learner a task with a check (`done`, a predicate on the
session). When the check passes, the tour moves on by itself; a stage without a task waits
for "next". "Show me" takes the stage's `show` steps for a learner who is stuck (or, for a
task that is a question to the coach, goes to the step `coach_at` and asks it). Steps are
step specs (see `Session.find`), so a tour names "node 3 receives Propose(red) from 1", never
an id that depends on the order things happened in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paxosd.lab.play.session import PlayConfig, Session

__all__ = ["TOURS", "Stage", "Tour", "TourProgress"]

Check = Callable[[Session, "TourProgress"], bool]


@dataclass(frozen=True, slots=True)
class Stage:
    say: str
    task: str = ""
    setup: tuple[dict[str, Any], ...] = ()
    done: Check | None = None
    show: tuple[dict[str, Any], ...] = ()
    # A stage whose task is to ask the coach at a given step: "show me" goes there and asks.
    coach_at: int | None = None


@dataclass(frozen=True, slots=True)
class Tour:
    key: str
    title: str
    chapter: str
    config: PlayConfig
    stages: tuple[Stage, ...]


@dataclass(slots=True)
class TourProgress:
    tour: Tour
    stage: int = 0
    coach_outlook: str = ""  # what the coach last said about the state (stuck, bivalent...)
    coached: int = 0  # how often the coach was asked
    coach_step: int = -1  # the step the coach was last asked about
    coach_violated: frozenset[str] = frozenset()  # what it then found violated
    finished: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def current(self) -> Stage:
        return self.tour.stages[self.stage]

    def to_json(self) -> dict[str, Any]:
        stage = self.current
        return {
            "key": self.tour.key,
            "title": self.tour.title,
            "chapter": self.tour.chapter,
            "stage": self.stage,
            "stages": len(self.tour.stages),
            "say": stage.say,
            "task": stage.task,
            "can_show": bool(stage.show) or stage.coach_at is not None,
            "coach_at": stage.coach_at,
            "waits_for_next": stage.done is None and not self.finished,
            "finished": self.finished,
            "log": self.log,
            "next": following(self.tour.key),
        }


def following(key: str) -> dict[str, str] | None:
    """The tour after this one, in the book's order (None after the last)."""
    keys = list(TOURS)
    if key not in keys or keys.index(key) + 1 >= len(keys):
        return None
    after = TOURS[keys[keys.index(key) + 1]]
    return {"key": after.key, "title": after.title, "chapter": after.chapter}


def start(session: Session, tour: Tour) -> TourProgress:
    progress = TourProgress(tour)
    session.apply_all(list(tour.stages[0].setup))
    session.tour = progress
    return progress


def advance(session: Session, progress: TourProgress, *, next_pressed: bool = False) -> bool:
    """Move on while the current stage is done; True if the tour moved."""
    moved = False
    while not progress.finished:
        stage = progress.current
        passed = next_pressed if stage.done is None else stage.done(session, progress)
        if not passed:
            break
        next_pressed = False
        if stage.task:
            progress.log.append(f"done: {stage.task}")
        moved = True
        if progress.stage + 1 >= len(progress.tour.stages):
            progress.finished = True
            break
        progress.stage += 1
        session.apply_all(list(progress.current.setup))
    return moved


# -- checks ------------------------------------------------------------------------------------


def _took(kind: str, **fields: Any) -> Check:
    """Some step of the branch so far is of this kind with these fields."""

    def check(session: Session, _: TourProgress) -> bool:
        for step in session.steps():
            if step.kind != kind:
                continue
            if all(getattr(step, name) == value for name, value in fields.items()):
                return True
        return False

    return check


def _noted(node: int, words: str) -> Check:
    """The node said something containing `words` (a note of the core) in the branch so far."""

    def check(session: Session, _: TourProgress) -> bool:
        return any(
            n == node and words in note for step in session.steps() for n, note in step.notes
        )

    return check


def _decided(node: int, value: Any) -> Check:
    def check(session: Session, _: TourProgress) -> bool:
        return (node, value) in session.state.decided

    return check


def _two_values_decided(session: Session, _: TourProgress) -> bool:
    return len({value for _, value in session.state.decided}) > 1


def _coach_said(outlook: str) -> Check:
    def check(_: Session, progress: TourProgress) -> bool:
        return progress.coach_outlook == outlook

    return check


def _coached(_: Session, progress: TourProgress) -> bool:
    return progress.coached > 0


def _coach_found_at_start(prop: str) -> Check:
    """The coach, asked at step 0, found `prop` violated (the shortest run from the start)."""

    def check(_: Session, progress: TourProgress) -> bool:
        return progress.coach_step == 0 and prop in progress.coach_violated

    return check


def heard(progress: TourProgress, step: int, advice: Any) -> None:
    """Record what the coach said, for the checks of the stage that asked for it."""
    progress.coached += 1
    progress.coach_outlook = advice.outlook
    progress.coach_step = step
    progress.coach_violated = frozenset(
        prop for prop, verdict in advice.verdicts.items() if verdict["status"] == "violated"
    )


def _crashed_before_voting(node: int) -> Check:
    def check(session: Session, _: TourProgress) -> bool:
        index = node - 1
        return session.state.cores[index] is None and session.state.disks[index] is None

    return check


def _deliver(src: int, dst: int, msg: str) -> dict[str, Any]:
    return {"kind": "deliver", "src": src, "dst": dst, "msg": msg}


def _propose(node: int, value: str) -> dict[str, Any]:
    return {"kind": "propose", "node": node, "value": value}


# -- the tours ---------------------------------------------------------------------------------

_LEADER = Tour(
    "leader-crash",
    "The leader that crashes",
    "Chapter 2: a single point of failure",
    PlayConfig("leader", nodes=3, values=2),
    (
        Stage(
            "Node 1 is the fixed leader: whatever value it hears first is decided, and the "
            "others ask it for the outcome. Everything depends on one node.",
            "Let a client at node 2 propose blue.",
            done=_took("propose", node=2),
            show=(_propose(2, "blue"),),
        ),
        Stage(
            "Node 2 has sent Set(blue) to the leader. The message is on its way: you decide "
            "whether it ever arrives.",
            "Crash the leader, node 1, before the message reaches it.",
            done=lambda s, p: _took("crash", node=1)(s, p) and not s.state.decided,
            show=({"kind": "crash", "node": 1},),
        ),
        Stage(
            "Node 2 keeps asking the leader (each time its timer fires it sends Set(blue) "
            "again), but nobody will ever answer.",
            "Ask the coach what can still happen from here.",
            done=_coach_said("stuck"),
        ),
        Stage(
            "Stuck: no value can ever be decided, whatever the network does. One crash was "
            "enough to break Termination. The book's next design replaces the dead leader."
        ),
    ),
)

_CUT_OFF_1 = {"kind": "partition", "links": [[1, 2], [1, 3], [2, 1], [3, 1]]}

_SPLIT_BRAIN = Tour(
    "split-brain",
    "Split brain",
    "Chapter 2: failover elects two leaders",
    PlayConfig("failover", nodes=3, values=2, crashes=0, faults=frozenset({"partition"})),
    (
        Stage(
            "Failover: node 1 leads and sends heartbeats; a node that stops hearing the "
            "leader follows the lowest id it still hears. A proposal goes to the leader.",
            "Let a client at node 1 propose red (node 1 is the leader: it decides at once).",
            done=_decided(1, "red"),
            show=(_propose(1, "red"),),
        ),
        Stage(
            "Red is decided at node 1. A client at node 2 now proposes blue, which node 2 "
            "forwards to its leader.",
            "Propose blue at node 2, then cut node 1 off: partition {1} | {2, 3}.",
            done=_took("partition", links=frozenset({(1, 2), (1, 3), (2, 1), (3, 1)})),
            show=(_propose(2, "blue"), _CUT_OFF_1),
        ),
        Stage(
            "Nodes 2 and 3 no longer hear node 1. They cannot tell a crashed leader from a "
            "cut-off one: after two quiet ticks they give up on it and follow node 2.",
            "Let time pass (and deliver the heartbeats between 2 and 3) until node 2 decides.",
            done=_two_values_decided,
            show=(
                {"kind": "tick"},
                _deliver(2, 3, "Heartbeat"),
                _deliver(3, 2, "Heartbeat"),
                {"kind": "tick"},
            ),
        ),
        Stage(
            "Node 1 decided red, node 2 decided blue: Agreement is violated without a single "
            "crash. Choosing a leader is itself a consensus problem, and a timeout cannot "
            "tell slow from dead."
        ),
    ),
)

_SEVEN_VOTERS = (
    _propose(1, "red"),
    _propose(2, "blue"),
    _deliver(1, 3, "Propose(red)"),
    _deliver(1, 4, "Propose(red)"),
    _deliver(2, 5, "Propose(blue)"),
    _deliver(2, 6, "Propose(blue)"),
)
_VOTE_OF = {1: "red", 3: "red", 4: "red", 2: "blue", 5: "blue", 6: "blue"}
_ALL_VOTES = tuple(
    _deliver(voter, receiver, f"Vote({value})")
    for voter, value in _VOTE_OF.items()
    for receiver in range(1, 7)
    if receiver != voter
)

_SPLIT_VOTE = Tour(
    "split-vote",
    "The 3/3 split vote",
    "Chapter 2: majority voting",
    PlayConfig("majority", nodes=7, values=2),
    (
        Stage(
            "Seven nodes vote for the first value they hear; four votes decide. Red reached "
            "nodes 1, 3 and 4 first, blue nodes 2, 5 and 6: three votes each.",
            "Node 7 has not voted yet. Crash it before any message reaches it.",
            setup=_SEVEN_VOTERS,
            done=_crashed_before_voting(7),
            show=({"kind": "crash", "node": 7},),
        ),
        Stage(
            "Deliver as many votes as you like: every node will count three for red and three "
            "for blue, and the seventh vote will never come.",
            "Deliver the votes (or let 'show me' do it).",
            done=lambda s, p: all(
                len(getattr(core, "votes", ())) == 6 for core in s.state.cores[:6] if core
            ),
            show=_ALL_VOTES,
        ),
        Stage(
            "No value can reach four votes: the cluster is stuck forever. Votes never change, "
            "so Agreement holds; it is Termination that one crash took away."
        ),
    ),
)

_TIEBREAK = Tour(
    "tiebreak",
    "The tiebreak that changes its mind",
    "Chapter 2: 'red wins ties'",
    PlayConfig("majority", nodes=7, values=2, variant="tiebreak"),
    (
        Stage(
            "The same 3/3 split, with the book's fix: once the last voter has been silent "
            "for a while, red wins a tie. Every vote between nodes 1 to 6 has arrived.",
            "Node 7 is only slow. Let node 1's timer fire until it breaks the tie.",
            setup=_SEVEN_VOTERS + _ALL_VOTES,
            done=_decided(1, "red"),
            show=({"kind": "timeout", "node": 1}, {"kind": "timeout", "node": 1}),
        ),
        Stage(
            "Node 1 decided red. But node 7 was never dead: blue's proposal is still on its way "
            "to it.",
            "Deliver Propose(blue) from 2 to node 7, then node 7's vote to node 1.",
            done=_two_values_decided,
            show=(_deliver(2, 7, "Propose(blue)"), _deliver(7, 1, "Vote(blue)")),
        ),
        Stage(
            "Blue now has four votes, a true majority, and node 1 decides blue after it "
            "decided red: Agreement is broken. A timeout cannot tell a slow node from a "
            "crashed one, and FLP says no algorithm can in an asynchronous system."
        ),
    ),
)

_FLP = Tour(
    "flp",
    "FLP's critical configuration",
    "Chapter 3: one crash at the wrong moment",
    PlayConfig("majority", nodes=3, values=2),
    (
        Stage(
            "Three voters; red was proposed at node 1 and blue at node 2. Each has voted for "
            "its own value. Both outcomes are still possible: the state is bivalent.",
            "Ask the coach which message decides the outcome.",
            setup=(_propose(1, "red"), _propose(2, "blue")),
            done=_coached,
        ),
        Stage(
            "The coach marks the critical messages: whichever proposal node 3 receives first "
            "fixes the outcome. FLP's argument: consider crashing node 3 at exactly that "
            "moment instead.",
            "Crash node 3.",
            done=_took("crash", node=3),
            show=({"kind": "crash", "node": 3},),
        ),
        Stage(
            "One vote each, and the only node that could break the tie is gone.",
            "Ask the coach again.",
            done=_coach_said("stuck"),
        ),
        Stage(
            "Stuck. FLP proves that every algorithm that can still go either way has such a "
            "step: a fault-tolerant consensus algorithm cannot guarantee to terminate. Paxos "
            "gives up guaranteed termination instead of safety."
        ),
    ),
)

_DUEL = Tour(
    "dueling-proposers",
    "Dueling proposers",
    "Chapter 4: Paxos need not terminate",
    PlayConfig("paxos", nodes=3, values=2, crashes=0, faults=frozenset(), ballots=4),
    (
        Stage(
            "Nodes 1 and 2 both propose. Node 1 (ballot 1.1) already has node 3's promise and "
            "has sent Accept(1.1, red); node 2 started ballot 1.2.",
            "Let node 2's Prepare(1.2) reach node 3 before node 1's Accept does, then the Accept.",
            setup=(
                _propose(1, "red"),
                _propose(2, "blue"),
                _deliver(1, 3, "Prepare(1.1)"),
                _deliver(3, 1, "Promise(1.1, none)"),
            ),
            done=_noted(1, "pre-empted"),
            show=(
                _deliver(2, 3, "Prepare(1.2)"),
                _deliver(1, 3, "Accept(1.1, red)"),
                _deliver(3, 1, "Nack(1.1, promised 1.2)"),
            ),
        ),
        Stage(
            "Node 3 promised 1.2, so it refused node 1's Accept: node 1 is pre-empted and "
            "backs off. When its timer fires it tries a higher ballot, 2.1.",
            "Now pre-empt node 2 the same way: fire node 1's timer, get node 3's promise for "
            "2.1 to it, and let the Accept of 1.2 arrive too late.",
            done=_noted(2, "pre-empted"),
            show=(
                _deliver(3, 2, "Promise(1.2, none)"),
                {"kind": "timeout", "node": 1},
                _deliver(1, 3, "Prepare(2.1)"),
                _deliver(2, 3, "Accept(1.2, blue)"),
                _deliver(3, 2, "Nack(1.2, promised 2.1)"),
            ),
        ),
        Stage(
            "Each proposer keeps pre-empting the other and nothing is ever chosen: a livelock. "
            "Paxos stays safe, but only luck ends the duel. The cure is a randomized backoff: "
            "`paxosd lab scenario dueling-proposers --sweep 1000` shows every run deciding."
        ),
    ),
)

_HOLDS = Tour(
    "paxos-holds",
    "Paxos keeps a chosen value",
    "Chapter 4: quorums intersect",
    PlayConfig("paxos", nodes=3, values=3, crashes=1, ballots=2),
    (
        Stage(
            "Node 1 proposed red with ballot 1.1; nodes 1 and 2 promised and have accepted "
            "1.1:red. Two of three acceptors: red is chosen, though nobody knows it yet.",
            "Crash node 1 before it hears back.",
            setup=(
                _propose(1, "red"),
                _deliver(1, 2, "Prepare(1.1)"),
                _deliver(2, 1, "Promise(1.1, none)"),
                _deliver(1, 2, "Accept(1.1, red)"),
            ),
            done=_took("crash", node=1),
            show=({"kind": "crash", "node": 1},),
        ),
        Stage(
            "Node 3 never heard of red. A client there proposes green: node 3 starts ballot "
            "1.3 and needs promises from a majority, so one of them must come from node 2.",
            "Propose green at node 3 and deliver its Prepare to node 2, and the Promise back.",
            done=_noted(3, "must carry on red"),
            show=(
                _propose(3, "green"),
                _deliver(3, 2, "Prepare(1.3)"),
                _deliver(2, 3, "Promise(1.3, 1.1:red)"),
            ),
        ),
        Stage(
            "Node 2's promise reported 1.1:red, so node 3 must propose red, not green: any two "
            "majorities share a node, and that node remembers.",
            "Finish the ballot: deliver the Accept to node 2 and its Accepted back.",
            done=_decided(3, "red"),
            show=(_deliver(3, 2, "Accept(1.3, red)"), _deliver(2, 3, "Accepted(1.3, red)")),
        ),
        Stage("Node 3 decided red: the value chosen before the crash survived it. That is Paxos."),
    ),
)


def _replica(session: Session, node: int) -> Any:
    """Node `node`'s Multi-Paxos replica (None while it is down)."""
    core = session.state.cores[node - 1]
    return getattr(core, "replica", None)


def _accepted_slots(node: int, count: int) -> Check:
    def check(session: Session, _: TourProgress) -> bool:
        replica = _replica(session, node)
        return replica is not None and len(replica.acceptor.entries) >= count

    return check


def _leads(node: int) -> Check:
    def check(session: Session, _: TourProgress) -> bool:
        replica = _replica(session, node)
        return replica is not None and replica.leading is not None

    return check


def _applied(node: int, slots: int) -> Check:
    def check(session: Session, _: TourProgress) -> bool:
        replica = _replica(session, node)
        return replica is not None and replica.learner.applied >= slots

    return check


_ELECT_1 = (
    {"kind": "timeout", "node": 1},
    _deliver(1, 2, "PreVote(1.1)"),
    _deliver(2, 1, "PreVoteReply(1.1, yes)"),
    _deliver(1, 2, "Prepare(1.1, from 1)"),
    _deliver(2, 1, "Promise(1.1, nothing accepted)"),
    _deliver(1, 2, "Accept(1.1, slot 1: no-op)"),
    _deliver(2, 1, "Accepted(1.1, slot 1)"),
)

_MULTI = Tour(
    "multi-paxos",
    "A new leader finishes the log",
    "Chapter 4: Multi-Paxos, one Paxos per slot",
    PlayConfig("multipaxos", nodes=3, values=2, crashes=1, ballots=3),
    (
        Stage(
            "This is the engine every paxosd node runs. Node 1 won an election (ballot 1.1: "
            "one phase 1 for every slot at once), and, as every new leader must, got something "
            "chosen in its own ballot before serving anyone: a no-op, in slot 1. Now clients "
            "propose; each value takes the next slot.",
            "Propose red at node 1 and blue at node 2 (a follower forwards its client's value "
            "to the leader), and deliver the Forward.",
            setup=_ELECT_1,
            done=_accepted_slots(1, 3),
            show=(_propose(1, "red"), _propose(2, "blue"), _deliver(2, 1, "Forward(blue)")),
        ),
        Stage(
            "Node 1 proposed red in slot 2 and blue in slot 3 (it accepted both itself). One "
            "more acceptance makes a quorum of two.",
            "Deliver Accept(1.1, slot 3: blue) to node 2 only, then crash node 1 before any "
            "Accepted reaches it. Blue is now chosen in slot 3, and nobody knows it.",
            done=lambda s, p: _took("crash", node=1)(s, p) and _accepted_slots(2, 2)(s, p),
            show=(_deliver(1, 2, "Accept(1.1, slot 3: blue)"), {"kind": "crash", "node": 1}),
        ),
        Stage(
            "Node 2 stops hearing from its leader. To take over it needs a quorum's promise, "
            "and with it, what that quorum accepted in every slot not known chosen.",
            "Fire node 2's timer and carry its election through node 3: PreVote, the reply, "
            "Prepare, and the Promise back.",
            done=_leads(2),
            show=(
                {"kind": "timeout", "node": 2},
                _deliver(2, 3, "PreVote(2.2)"),
                _deliver(3, 2, "PreVoteReply(2.2, yes)"),
                _deliver(2, 3, "Prepare(2.2, from 2)"),
                _deliver(3, 2, "Promise(2.2, nothing accepted)"),
            ),
        ),
        Stage(
            "Node 2 leads in ballot 2.2. The quorum {2, 3} reported blue accepted in slot 3 "
            "(node 2's own acceptance), so node 2 proposes blue again there, in its own ballot: "
            "a value a quorum accepted may already be chosen, and here it is. Nobody reported "
            "anything for slot 2, so node 2 fills it with a no-op rather than leave a gap the "
            "log could never apply past. Red reached no quorum: it is not in the log, and its "
            "client, which never heard back, must propose it again.",
            "Deliver node 2's two Accepts to node 3 and both Accepted replies.",
            done=_applied(2, 3),
            show=(
                _deliver(2, 3, "Accept(2.2, slot 2: no-op)"),
                _deliver(2, 3, "Accept(2.2, slot 3: blue)"),
                _deliver(3, 2, "Accepted(2.2, slot 2)"),
                _deliver(3, 2, "Accepted(2.2, slot 3)"),
            ),
        ),
        Stage(
            "Node 2's log: slot 1 no-op, slot 2 no-op, slot 3 blue. A new leader never decides "
            "on its own what a slot holds: it asks a quorum, keeps what was accepted, and fills "
            "only true gaps. That is how paxosd loses a leader and keeps every value it chose."
        ),
    ),
)

_SIGN_UPS = (_propose(1, "alice"), _propose(2, "bob"))

_REPLICATION = Tour(
    "replication",
    "Two replicas, one username",
    "Chapter 1, Example 2: multi-leader replication",
    PlayConfig("replication", nodes=3, values=2, crashes=0, faults=frozenset()),
    (
        Stage(
            "Alice and Bob both sign up as paxos_expert. Alice's web server writes to replica "
            "1, Bob's to replica 2. Under multi-leader replication each replica accepts an "
            "insert on its own, answers at once, and sends the row to the others later.",
            "Sign Alice up at replica 1 and Bob at replica 2, before any sync arrives.",
            done=_two_values_decided,
            show=_SIGN_UPS,
        ),
        Stage(
            "Both web servers were told 'registered': replica 1 says Alice owns the name, "
            "replica 2 says Bob. Now the lazy sync runs.",
            "Deliver the four Replicate messages.",
            done=lambda s, p: not any(type(e.msg).__name__ == "Replicate" for e in s.state.network),
            show=(
                _deliver(1, 2, "Replicate(paxos_expert: alice)"),
                _deliver(1, 3, "Replicate(paxos_expert: alice)"),
                _deliver(2, 1, "Replicate(paxos_expert: bob)"),
                _deliver(2, 3, "Replicate(paxos_expert: bob)"),
            ),
        ),
        Stage(
            "Each replica kept the row it had and refused the other: the unique constraint "
            "holds in every copy, yet two users own paxos_expert. Agreement is violated, and no "
            "sync can repair it without a replica changing its mind. How short can such a run "
            "be? The explorer knows.",
            "Go back to step 0 (first) and ask the coach.",
            done=_coach_found_at_start("agreement"),
            coach_at=0,
        ),
        Stage(
            "The coach's shortest run that breaks Agreement is the two sign-ups, nothing more: "
            "no crash, no lost message. The web servers passed their consensus problem to the "
            "database, and multi-leader replication did not solve it. The next chapter runs the "
            "same two sign-ups through a consensus-backed table."
        ),
    ),
)

_REPLICATION_CONSENSUS = Tour(
    "replication-consensus",
    "A consensus-backed table",
    "Chapter 1, Example 2: the fix",
    PlayConfig(
        "replication", nodes=3, values=2, crashes=0, faults=frozenset(), variant="consensus"
    ),
    (
        Stage(
            "The same two sign-ups, but no replica inserts the row on its own: the owner of "
            "paxos_expert is decided by Paxos across the replicas, and each replica inserts "
            "the row only once it is chosen.",
            "Sign Alice up at replica 1 and Bob at replica 2.",
            done=lambda s, p: len(s.state.proposed) == 2,
            show=_SIGN_UPS,
        ),
        Stage(
            "Each replica started a Paxos ballot for its user (1.1 for Alice, 1.2 for Bob). "
            "Replica 3 decides nothing on its own: it answers whichever ballot reaches it.",
            "Let Alice's ballot win: deliver its Prepare to replica 3, the Promise back, its "
            "Accept to replica 3 and the Accepted back.",
            done=_decided(1, "alice"),
            show=(
                _deliver(1, 3, "Prepare(1.1)"),
                _deliver(3, 1, "Promise(1.1, none)"),
                _deliver(1, 3, "Accept(1.1, alice)"),
                _deliver(3, 1, "Accepted(1.1, alice)"),
            ),
        ),
        Stage(
            "Alice's ownership is chosen: replica 1 inserted the row and tells the others.",
            "Deliver the Decided messages to replicas 2 and 3.",
            done=lambda s, p: len(s.state.decided) == 3,
            show=(_deliver(1, 2, "Decided(alice)"), _deliver(1, 3, "Decided(alice)")),
        ),
        Stage(
            "One row, on every replica: Alice owns paxos_expert, and Bob's web server is told "
            "the name is taken. Whatever order the messages had come in, Paxos would have "
            "chosen one owner (the coach can show you every run). The conflict was solved where "
            "it belonged, by consensus."
        ),
    ),
)

TOURS: dict[str, Tour] = {
    tour.key: tour
    for tour in (
        _REPLICATION, _REPLICATION_CONSENSUS, _LEADER, _SPLIT_BRAIN, _SPLIT_VOTE, _TIEBREAK,
        _FLP, _DUEL, _HOLDS, _MULTI,
    )
}  # fmt: skip
