"""Quorum systems. Every "is this enough nodes?" question goes through one of these objects."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from paxosd.core.types import NodeId


@dataclass(frozen=True, slots=True)
class Majority:
    """Simple majority quorums over a fixed membership: any two quorums intersect."""

    members: tuple[NodeId, ...]

    @property
    def size(self) -> int:
        return len(self.members) // 2 + 1

    def _count(self, nodes: Iterable[NodeId]) -> int:
        return len(set(nodes) & set(self.members))

    def is_phase1_quorum(self, nodes: Collection[NodeId]) -> bool:
        """Enough promises to safely pick a value (Prepare/Promise)."""
        return self._count(nodes) >= self.size

    def is_phase2_quorum(self, nodes: Collection[NodeId]) -> bool:
        """Enough acceptances for a value to be chosen (Accept/Accepted)."""
        return self._count(nodes) >= self.size

    def is_majority(self, nodes: Collection[NodeId]) -> bool:
        """Plain majority vote, used by the teaching algorithms."""
        return self._count(nodes) >= self.size
