"""The fault-injection layer of paxosd's Jepsen-style chaos harness.

- `proxy`: a userspace TCP proxy per directed peer link (`LinkProxy`) and the mesh of them
  (`ProxyMesh`): partitions, one-way cuts, bridges, delay, loss, duplication, resets.
- `processes`: `paxosd node` subprocesses (`NodeProcess`: kill -9, SIGTERM, SIGSTOP/SIGCONT,
  restart, a failing disk) and `write_configs`, which points every node at the proxies.
- `nemesis`: seeded fault schedules (`make_schedule`) and `NemesisRunner`, which inflicts
  them and records each fault with wall-clock start and end times.

And the harness on top (`paxosd chaos`):

- `workloads`: the recorded clients (kv, locks, names, decisions, availability probes).
- `runner`: one run end to end (cluster up, clients and faults, recovery, full restart).
- `report`: the results (verdicts, counts, availability, recovery times).
- `timeline`: the self-contained HTML swimlane of a run.

See docs/chaos-faults.md and docs/chaos.md.
"""

from paxosd.chaos.nemesis import (
    KINDS,
    FaultEvent,
    NemesisRunner,
    agreed_leader,
    leader_of,
    make_schedule,
)
from paxosd.chaos.processes import (
    NodeProcess,
    cluster_layout,
    fetch_status,
    peer_addresses,
    write_configs,
)
from paxosd.chaos.proxy import LinkFaults, LinkProxy, LinkStats, ProxyMesh

__all__ = [
    "KINDS",
    "FaultEvent",
    "LinkFaults",
    "LinkProxy",
    "LinkStats",
    "NemesisRunner",
    "NodeProcess",
    "ProxyMesh",
    "agreed_leader",
    "cluster_layout",
    "fetch_status",
    "leader_of",
    "make_schedule",
    "peer_addresses",
    "write_configs",
]
