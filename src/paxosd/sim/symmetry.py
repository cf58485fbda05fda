"""Symmetry reduction for the explorer: states that differ only by a renaming are one state.

Theory of operation. Some nodes and some values are interchangeable. In single-decree Paxos
with two values proposed at nodes 1 and 2, nodes 3, 4 and 5 of a five-node cluster never
propose: whatever node 3 can do, node 4 can do in the mirrored run. And once red and blue have
both been proposed, the cores treat them alike (they compare ballots, never values), so the
run in which red and blue swap places everywhere is as possible as the original. A renaming
`g` (a permutation of the interchangeable nodes, and one of the interchangeable values) is a
symmetry when it maps every transition to a transition: then a state `s` breaks Agreement or
Validity exactly when `g(s)` does, reaches a decision for `v` exactly when `g(s)` reaches one
for `g(v)`, and is stuck exactly when `g(s)` is. A search may therefore keep one state per
orbit (the set of all renamings of a state) and lose nothing.

Which renamings are symmetries is the algorithm's to say, because it depends on the code:
- values may be swapped only if the cores never look at a value except to compare it for
  equality (the majority core's "red wins ties" variant does look), and only among the values
  already proposed when the search starts: a value yet to be proposed is proposed at a fixed
  node, so renaming it would invent a proposal nobody can make;
- nodes may be swapped only if their ids never decide anything (a node that never proposes in
  Paxos; not the fixed leader; not a failover node, whose id is its rank).

Each state is keyed by the smallest-hashed image of its key under the whole group, so every
member of an orbit computes the same key (a tie between two different images may keep two
keys for one orbit: that costs reduction, never soundness, since only equal images merge).
Values are renamed wherever they occur in a key (they are the lab's value names, strings no
core uses for anything else); node ids are renamed in envelopes, links, decisions and core
positions here, and inside core state by the core's own `rename_nodes` (ints cannot be told
apart from counters and rounds without the core's help).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.core.types import Ballot, Envelope, NodeId

__all__ = ["Renaming", "Symmetry", "rename_values"]

# Limits: a group this large costs more to canonicalise than it saves.
group_size_max = 48

RenameNodes = Callable[[Hashable, Mapping[NodeId, NodeId]], Hashable]


@dataclass(frozen=True, slots=True)
class Renaming:
    """One element of the group: where each node goes, and where each value (by index) goes."""

    nodes: tuple[NodeId, ...]  # nodes[i - 1] is the new name of node i
    values: tuple[int, ...]  # values[i] is the new index of value i

    @property
    def node_map(self) -> dict[NodeId, NodeId]:
        return {old: new for old, new in enumerate(self.nodes, 1) if old != new}

    def inverse_values(self) -> tuple[int, ...]:
        inverse = [0] * len(self.values)
        for old, new in enumerate(self.values):
            inverse[new] = old
        return tuple(inverse)


class Symmetry:
    """The renamings a search may treat as one (see the module docstring)."""

    def __init__(
        self,
        nodes: int,
        values: Sequence[Any],
        swap_nodes: Sequence[NodeId] = (),
        renamings: Sequence[Renaming] = (),
        rename_nodes: RenameNodes | None = None,
    ) -> None:
        """`swap_nodes`: node ids any permutation of which is a symmetry (needs
        `rename_nodes(value, mapping)`, which renames node ids inside a core's state key, a
        message or a durable record); `renamings`: further symmetries that leave
        `swap_nodes` alone (such as two proposers swapped together with their values), which
        are combined with those permutations."""
        self.values = list(values)
        self.nodes = nodes
        swap = sorted(set(swap_nodes)) if rename_nodes is not None else []
        if math.factorial(len(swap)) * (len(renamings) + 1) > group_size_max:
            swap = []
        self.swap_nodes = swap
        identity = Renaming(tuple(range(1, nodes + 1)), tuple(range(len(values))))
        bases = [identity] + [r for r in renamings if r != identity]
        for base in bases:
            assert all(base.nodes[n - 1] == n for n in swap), "a renaming moves a swap node"
        self.bases = bases
        self.group: list[Renaming] = []
        self._number: dict[tuple[int, tuple[NodeId, ...]], int] = {}
        for number, base in enumerate(bases):
            for order in itertools.permutations(swap):
                place = dict(zip(swap, order, strict=True))
                moved = tuple(place.get(base.nodes[i], base.nodes[i]) for i in range(nodes))
                self._number[(number, tuple(order))] = len(self.group)
                self.group.append(Renaming(moved, base.values))
        self.rename_nodes = rename_nodes
        self._caches: list[tuple[dict[Any, Any], ...]] = [({}, {}, {}) for _ in self.group]
        self._names: list[dict[Any, Any]] = [
            {self.values[old]: self.values[new] for old, new in enumerate(g.values) if old != new}
            for g in self.group
        ]
        self._anonymous = {n: 0 for n in swap}
        self._signatures: dict[Any, int] = {}

    @property
    def trivial(self) -> bool:
        return len(self.group) <= 1

    def canonical(self, key: tuple[Any, ...]) -> tuple[Hashable, int]:
        """The orbit's key for an explorer state's key (`ExState.key()`), and the index of the
        renaming that produced it.

        For each base renaming, the interchangeable nodes are sorted by a signature of their
        own state that does not depend on their names, so one permutation of them is tried
        (or, where signatures tie, each order of the tied nodes). The candidate whose nodes
        (core keys and disks, renamed through caches) hash lowest wins; only the winner
        renames the messages too. Two states of one orbit may still end with two keys when
        a tie is broken differently: that loses some reduction, never soundness."""
        core_keys, disks = key[0], key[1]
        best_hash = hash(core_keys)
        chosen = 0
        for base in range(len(self.bases)):
            first = self._number[(base, tuple(self.swap_nodes))]
            moved = self._cores_image(core_keys, first)
            for order in self._orders(moved, disks):
                number = self._number[(base, order)]
                if number == 0:
                    continue
                image_hash = hash(self._cores_image(core_keys, number))
                if image_hash < best_hash:
                    best_hash, chosen = image_hash, number
        if chosen:
            return self._image(key, chosen), chosen
        return key, 0

    def _orders(self, cores: tuple[Any, ...], disks: tuple[Any, ...]) -> list[tuple[int, ...]]:
        """The permutations of the swap nodes (as `order` tuples: node swap[i] becomes
        order[i]) that sort them by signature, every order of tied nodes included."""
        swap = self.swap_nodes
        if not swap:
            return [()]
        signed = sorted((self._signature(cores[n - 1], disks, n), n) for n in swap)
        if len({signature for signature, _ in signed}) == len(signed):  # no tie: one order
            place = {node: swap[rank] for rank, (_, node) in enumerate(signed)}
            return [tuple(place[n] for n in swap)]
        classes: list[list[int]] = []
        last = None
        for signature, node in signed:
            if classes and signature == last:
                classes[-1].append(node)
            else:
                classes.append([node])
            last = signature
        orders: list[tuple[int, ...]] = []
        for arrangement in itertools.product(*(itertools.permutations(c) for c in classes)):
            ranked = [node for group in arrangement for node in group]
            place = {node: swap[rank] for rank, node in enumerate(ranked)}
            orders.append(tuple(place[n] for n in swap))
            if len(orders) >= group_size_max:
                break
        return orders

    def _signature(self, core: Any, disks: tuple[Any, ...], node: NodeId) -> int:
        """A hash of a node's own state (its core's key; its durable record if it is down)
        with every swap node's name blanked out."""
        found = self._signatures.get(core)
        if found is None:
            rename = self.rename_nodes
            assert rename is not None
            found = hash(rename(getattr(core, "value", core), self._anonymous))
            self._signatures[core] = found
        if getattr(core, "value", None) == ("down",):
            return hash((found, rename_values(disks[node - 1], {})))
        return found

    def _part(self, number: int, kind: int, value: Any) -> Any:
        cache = self._caches[number][kind]
        found = cache.get(value)
        if found is None:
            renaming = self.group[number]
            names = self._names[number]
            nodes = renaming.node_map
            found = rename_values(value, names) if names else value
            if nodes and kind == _PART_CORE and self.rename_nodes is not None:
                found = _rename_frozen(found, nodes, self.rename_nodes)
            elif nodes and kind != _PART_CORE:
                found = _rename_plain(found, nodes, self.rename_nodes)
            cache[value] = found
        return found

    def _cores_image(self, core_keys: tuple[Any, ...], number: int) -> tuple[Any, ...]:
        if number == 0:
            return core_keys
        order = self.group[number].nodes
        moved: list[Any] = [None] * len(core_keys)
        for index, core in enumerate(core_keys):
            moved[order[index] - 1] = self._part(number, _PART_CORE, core)
        return tuple(moved)

    def _image(self, key: tuple[Any, ...], number: int) -> tuple[Any, ...]:
        core_keys, disks, network, proposed, crashes, partitions, blocked, decided, timeouts = key
        renaming = self.group[number]
        order = renaming.nodes
        names = self._names[number]
        moved_cores = self._cores_image(core_keys, number)
        moved_disks: list[Any] = [None] * len(disks)
        for index, disk in enumerate(disks):
            moved_disks[order[index] - 1] = self._part(number, _PART_DISK, disk)
        moved_network = frozenset(self._part(number, _PART_ENVELOPE, e) for e in network)
        moved_proposed = frozenset(renaming.values[i] for i in proposed)
        moved_blocked = frozenset((order[a - 1], order[b - 1]) for a, b in blocked)
        moved_decided = frozenset((order[n - 1], names.get(v, v)) for n, v in decided)
        return (
            moved_cores, tuple(moved_disks), moved_network, moved_proposed, crashes,
            partitions, moved_blocked, moved_decided, timeouts,
        )  # fmt: skip

    def value_map(self, number: int) -> tuple[int, ...]:
        return self.group[number].values


_PART_CORE, _PART_DISK, _PART_ENVELOPE = range(3)


def _rename_frozen(frozen: Any, nodes: Mapping[NodeId, NodeId], rename: RenameNodes) -> Any:
    from paxosd.sim.explorer import Frozen

    if not isinstance(frozen, Frozen) or frozen.value == ("down",):
        return frozen
    return Frozen(rename(frozen.value, nodes))


def _rename_plain(value: Any, nodes: Mapping[NodeId, NodeId], rename: RenameNodes | None) -> Any:
    """Envelopes: the endpoints; the message and a disk record by the core's renamer too."""
    if isinstance(value, Envelope):
        msg = value.msg if rename is None else rename(value.msg, nodes)
        return Envelope(nodes.get(value.src, value.src), nodes.get(value.dst, value.dst), msg)
    if value is None or rename is None:
        return value
    return rename(value, nodes)


# -- renaming values inside any state ---------------------------------------------------------

_ATOM, _SEQUENCE, _SET, _RECORD, _DATACLASS, _ENVELOPE = range(6)
_kinds: dict[type, tuple[int, tuple[str, ...]]] = {}


def _kind(value: Any) -> tuple[int, tuple[str, ...]]:
    klass = type(value)
    known = _kinds.get(klass)
    if known is not None:
        return known
    kind: tuple[int, tuple[str, ...]]
    if klass is Ballot or issubclass(klass, str | int | float | bytes | bool):
        kind = (_ATOM, ())
    elif klass is Envelope:
        kind = (_ENVELOPE, ())
    elif issubclass(klass, tuple | list):
        kind = (_SEQUENCE, ())
    elif issubclass(klass, frozenset | set):
        kind = (_SET, ())
    elif dataclasses.is_dataclass(klass):
        kind = (_DATACLASS, tuple(f.name for f in dataclasses.fields(klass)))
    elif getattr(klass, "__name__", "") == "Frozen":
        kind = (_RECORD, ("value",))
    else:
        kind = (_ATOM, ())
    _kinds[klass] = kind
    return kind


def rename_values(value: Any, names: Mapping[Any, Any]) -> Any:
    """`value` with every atom that is a key of `names` replaced by its image; containers and
    frozen dataclasses are rebuilt only where something changed (so equal in, equal out)."""
    kind, fields = _kind(value)
    if kind == _ATOM:
        try:
            return names.get(value, value)
        except TypeError:  # an unhashable atom is no value name
            return value
    if kind == _SEQUENCE:
        items = tuple(rename_values(v, names) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    if kind == _SET:
        return frozenset(rename_values(v, names) for v in value)
    if kind == _ENVELOPE:
        msg = rename_values(value.msg, names)
        return value if msg is value.msg else Envelope(value.src, value.dst, msg)
    if kind == _RECORD:
        inner = rename_values(value.value, names)
        return value if inner is value.value else type(value)(inner)
    changes = {}
    for name in fields:
        old = getattr(value, name)
        new = rename_values(old, names)
        if new is not old:
            changes[name] = new
    return dataclasses.replace(value, **changes) if changes else value
