"""Who takes part in the log: the voters whose majorities are the quorums, and the learners
who receive what is chosen but never vote.

Theory of operation. A configuration is a value, not a list passed around: every question
about membership ("is this a quorum?", "whom do I send Accepts to?", "may this node vote?")
is asked of one `Configuration`, so that changing membership later (one epoch after another,
each with its own configuration) changes one value rather than code spread over the replica.
Within one epoch the configuration never changes; the engine runs unchanged inside it.

A configuration is durable: a store records the configuration it was made for, and a node
whose config file names other members than its store refuses to start (a member list changed
by hand could make two disjoint majorities, and lose what one of them chose).

Identities. A member that joined through the log (not a founding member of a config file) is
recorded with its `Joined` entry: the incarnation id written in the store it joined with, and
how to reach it. A node whose store was lost gets a new incarnation with its new store, so
its old identity (same id, lost store) is refused by `admits` at every peer's handshake and
can never vote again: it comes back only as a new member, added through the log. Founding
members have no entry: a founding member's lost store is refused at start and rebuilt from a
majority before it votes (docs/operations.md, "A lost or damaged store").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paxosd.core.quorum import Majority
from paxosd.core.types import NodeId, node_id_max

# The largest incarnation id (ids are random 63-bit integers, 0 is never one) and the
# longest contact text a joined member may carry (the runtime's addresses).
incarnation_max = (1 << 63) - 1
contact_chars_max = 512


@dataclass(frozen=True, slots=True)
class Joined:
    """A member that joined through the log: the incarnation id of the store it joined with,
    and `contact`, how to reach it (opaque to the core: the runtime's addresses, as text)."""

    node: NodeId
    incarnation: int
    contact: str = ""

    def __post_init__(self) -> None:
        if type(self.node) is not int or not 0 <= self.node <= node_id_max:
            raise ValueError(f"a joined member needs a node id, got {self.node!r}")
        if type(self.incarnation) is not int or not 1 <= self.incarnation <= incarnation_max:
            raise ValueError(f"an incarnation is an int in [1, 2**63), got {self.incarnation!r}")
        if type(self.contact) is not str or len(self.contact) > contact_chars_max:
            raise ValueError(f"a contact is text of at most {contact_chars_max} characters")


@dataclass(frozen=True, slots=True)
class Configuration:
    """The members of one epoch: `voters` (sorted, unique, at least one) and `learners`
    (sorted, unique, disjoint from the voters)."""

    voters: tuple[NodeId, ...]
    learners: tuple[NodeId, ...] = ()
    epoch: int = 0
    # The first slot of the epoch: the slot after the change that started it (1 for the
    # first epoch). A node that restarts knowing the members of an epoch must still reach
    # this slot before it may lead in it (docs/engine.md, "Membership change").
    first_slot: int = 1
    # Members that joined through the log, by node id (see the module docstring).
    joined: tuple[Joined, ...] = ()

    def __post_init__(self) -> None:
        if not self.voters:
            raise ValueError("a configuration needs at least one voter")
        for name, ids in (("voters", self.voters), ("learners", self.learners)):
            if list(ids) != sorted(set(ids)):
                raise ValueError(f"{name} must be sorted and unique, got {ids!r}")
            if any(type(i) is not int or not 0 <= i <= node_id_max for i in ids):
                raise ValueError(f"{name} must be node ids in [0, {node_id_max}], got {ids!r}")
        if set(self.voters) & set(self.learners):
            raise ValueError("a node is either a voter or a learner, not both")
        if type(self.epoch) is not int or self.epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {self.epoch!r}")
        if type(self.first_slot) is not int or self.first_slot < 1:
            raise ValueError(f"first_slot must be a positive int, got {self.first_slot!r}")
        if type(self.joined) is not tuple or any(type(j) is not Joined for j in self.joined):
            raise ValueError(f"joined must be a tuple of Joined entries, got {self.joined!r}")
        nodes = [j.node for j in self.joined]
        if nodes != sorted(set(nodes)):
            raise ValueError(f"joined must be Joined entries sorted by node, got {self.joined!r}")
        if not set(nodes) <= set(self.voters) | set(self.learners):
            raise ValueError("a joined entry names a node that is not a member")

    @classmethod
    def of(cls, voters: Iterable[NodeId], learners: Iterable[NodeId] = ()) -> Configuration:
        """A configuration of epoch 0 from unsorted ids."""
        return cls(tuple(sorted(set(voters))), tuple(sorted(set(learners))))

    @property
    def members(self) -> tuple[NodeId, ...]:
        """Everyone who receives the log: voters and learners, sorted."""
        return tuple(sorted(self.voters + self.learners))

    @property
    def quorum(self) -> Majority:
        """The quorum system of this configuration: majorities of the voters."""
        return Majority(self.voters)

    def is_voter(self, node: NodeId) -> bool:
        return node in self.voters

    def peers_of(self, node: NodeId) -> tuple[NodeId, ...]:
        """Every member but `node`, voters first (whom `node` sends to)."""
        return tuple(m for m in self.voters + self.learners if m != node)

    def voting_peers_of(self, node: NodeId) -> tuple[NodeId, ...]:
        """Every voter but `node` (whose promises and acceptances count)."""
        return tuple(m for m in self.voters if m != node)

    def is_member(self, node: NodeId) -> bool:
        return node in self.voters or node in self.learners

    def joined_entry(self, node: NodeId) -> Joined | None:
        return next((j for j in self.joined if j.node == node), None)

    def admits(self, node: NodeId, incarnation: int | None) -> str | None:
        """Why a peer that says it is `node` with a store of `incarnation` may take no part
        (None: it may). Only a member recorded with another incarnation is refused: its
        store was lost and remade, so it is not the member that joined."""
        entry = self.joined_entry(node)
        if entry is None or entry.incarnation == incarnation:
            return None
        return (
            f"node {node} joined with store incarnation {entry.incarnation:x}, but this one "
            f"is {'unknown' if incarnation is None else format(incarnation, 'x')}: its store "
            f"was lost or replaced, and a node never votes with state it has lost. Remove "
            f"node {node} (paxosd member remove {node}) and join it again as a new member "
            f"(paxosd node --join)"
        )

    def after(
        self, voters: Iterable[NodeId], learners: Iterable[NodeId], joining: Joined | None = None
    ) -> Configuration:
        """The configuration of the next epoch with these members: the joined entries of the
        members that stay, and `joining` (a node joining as a learner, with its identity)."""
        voters, learners = tuple(sorted(set(voters))), tuple(sorted(set(learners)))
        stay = set(voters) | set(learners)
        joined = {j.node: j for j in self.joined if j.node in stay}
        if joining is not None:
            joined[joining.node] = joining
        return Configuration(
            voters, learners, self.epoch + 1, 1, tuple(joined[n] for n in sorted(joined))
        )

    def same_members(self, other: Configuration) -> bool:
        """Whether `other` has the same voters, learners and identities (whatever its
        epoch)."""
        return (self.voters, self.learners, self.joined) == (
            other.voters,
            other.learners,
            other.joined,
        )

    def describe(self) -> str:
        """For operators: 'voters 1,2,3' or 'voters 1,2,3; learners 4'."""
        text = "voters " + ",".join(map(str, self.voters))
        if self.learners:
            text += "; learners " + ",".join(map(str, self.learners))
        return text


class ConfigurationMismatch(Exception):
    """A replica was started with other members than its store was made for: it refuses to
    run (a member list changed by hand could make two majorities that share no node)."""

    def __init__(self, node: NodeId, stored: Configuration, given: Configuration) -> None:
        self.node, self.stored, self.given = node, stored, given
        super().__init__(
            f"node {node}'s store belongs to {stored.describe()} (epoch {stored.epoch}), but "
            f"it was started with {given.describe()}: membership changes only through the "
            f"log; start it with the members its store was made for"
        )
