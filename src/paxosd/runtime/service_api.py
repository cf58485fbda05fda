"""What the client-facing front ends (HTTP, RESP) need from a node: one code path into the
engine for both.

`execute` takes one state-machine operation (see `paxosd.service.commands`):
- writes (Put, Delete, Cas, LockAcquire, LockRefresh, LockRelease, NameRegister,
  DecisionPropose) go through the replicated log; a follower forwards them to the leader and
  answers once it has applied them itself;
- reads (Get, NameLookup, DecisionGet, LockStatus) are linearizable (read-index, confirmed
  with a quorum), on any node.
With `client_id` and `seq` a write is applied at most once however often it is retried (the
client's own retries must reuse them); without, the node makes a fresh pair.
It returns a result from `paxosd.service.results` (each has `to_json()`), or raises one of
`paxosd.runtime.errors`: BadRequest, NotLeader, Unavailable (outcome unknown), Overloaded.
"""

from __future__ import annotations

import asyncio
from typing import Any, BinaryIO, Protocol

from paxosd.core.multi.configuration import Joined
from paxosd.service.kv.checks import KvLimits
from paxosd.storage.backup import BackupMeta
from paxosd.watch import WatchHub


class NodeService(Protocol):
    node_id: int
    cluster_id: str
    # Every watch the node serves (paxosd.watch); None while the node is damaged.
    watches: WatchHub | None

    async def execute(
        self,
        op: Any,
        *,
        client_id: str | None = None,
        seq: int | None = None,
        timeout_s: float | None = None,
    ) -> Any: ...

    def submit(
        self, op: Any, *, client_id: str | None = None, seq: int | None = None
    ) -> asyncio.Future[Any]:
        """The same as `execute`, without a coroutine per request (the RESP hot path): the
        future resolves to the result or to one of the errors, after the node's default
        timeout at the latest."""
        ...

    def status(self) -> dict[str, Any]:
        """node_id, pid, role, leader, ballot, chosen/applied slots, members (with their
        http/resp addresses and last-heard ages), lag, recent leader changes, throughput and
        latency figures; JSON-serializable."""
        ...

    async def backup(self) -> tuple[BackupMeta, BinaryIO]:
        """The state machine's snapshot at one slot, after a linearizable read (so it holds
        every write acknowledged before it was asked), in an unnamed temporary file rewound
        to its start (the caller closes it), and the meta describing it."""
        ...

    def change_members(
        self, voters: list[int], learners: list[int], joining: Joined | None = None
    ) -> str:
        """Change the members through the log (this node must lead): "" once the change is
        under way, else the reason it cannot be. `joining`: a new node's identity and
        addresses, when it joins as a learner."""
        ...

    def transfer_leadership(self, target: int) -> str | None:
        """Hand leadership to node `target` (this node must lead): None once the handover has
        begun, else the reason it cannot be."""
        ...

    def members(self) -> list[dict[str, Any]]:
        """[{"id", "http", "resp", "peer"}] for every member, this node included."""
        ...

    @property
    def kv_limits(self) -> KvLimits:
        """The limits this node puts on key-value requests (its config's [kv]): the front
        ends check a request against them before sending it, so a refusal names them."""
        ...

    @property
    def lease_ttl_ms_min(self) -> int:
        """The shortest lease this node grants, in ms: 1.5 times its longest election timeout
        (a shorter lease would end whenever the leader changes; docs/leases.md)."""
        ...

    def term(self) -> int:
        """The round of the highest ballot this node has promised (0 before any): what the
        etcd API reports as raft_term. Cheap: read on every etcd API answer."""
        ...

    def metrics_text(self) -> bytes:
        """Prometheus exposition of this node's metrics."""
        ...
