"""The simulator's host of the shared driver (`SimNode`): what it does on a restart."""

from __future__ import annotations

from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.records import Configured
from paxosd.sim.cluster import Cluster, SimSpec


def test_a_node_whose_store_names_other_members_stays_down() -> None:
    """As `paxosd node` refuses to start, a simulated node whose store was made for other
    members is not restarted: the check runs in the replica, which both hosts share."""
    cluster = Cluster(SimSpec(nodes=3, faults=frozenset()), seed=1)
    cluster.crash(2)
    disk = cluster.disks[2]
    disk.write([Configured(Configuration((1, 2, 3, 4, 5), epoch=0))])
    disk.sync()
    cluster.restart(2)
    assert cluster.nodes[2] is None
    assert cluster.faults.get("start_refused") == 1
