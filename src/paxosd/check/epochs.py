"""The membership properties, as checks over what a run chose and adopted.

- Stops hold: an epoch chooses nothing above its stop. If a configuration change was chosen
  at slot i in epoch e, no slot above i was chosen in epoch e (those slots belong to epoch
  e+1, under other quorums; a value chosen there by epoch e's quorums could contradict one
  chosen by epoch e+1's).
- Members agree: every node that adopted an epoch adopted the same members and the same first
  slot for it, and the first slot of epoch e+1 is one above the stop of epoch e.

What a run reports: `Chosen(node, slot, epoch, batch)` for every slot a node learned chosen,
with the epoch it was chosen in, and `Adopted(node, epoch, configuration, first_slot)` for
every epoch a node entered. The checkers know nothing about the engine; they read these only,
and tests feed them broken histories to show that they fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from paxosd.check.consensus import Verdict
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.reconfigure import in_batch
from paxosd.core.multi.records import Batch
from paxosd.core.types import NodeId


@dataclass(frozen=True, slots=True)
class Chosen:
    node: NodeId
    slot: int
    epoch: int
    batch: Batch


@dataclass(frozen=True, slots=True)
class Adopted:
    node: NodeId
    epoch: int
    configuration: Configuration
    first_slot: int


def check_stops(chosen: Iterable[Chosen]) -> Verdict:
    """No epoch chooses a slot above the slot where its configuration change was chosen."""
    records = list(chosen)
    stops: dict[int, tuple[int, NodeId]] = {}  # epoch -> (lowest stop slot, who learned it)
    for record in records:
        change = in_batch(record.batch)
        if change is None:
            continue
        if change.stops_epoch != record.epoch:
            return Verdict(
                "stops",
                "violated",
                f"node {record.node} learned a change to epoch {change.configuration.epoch} "
                f"chosen at slot {record.slot} in epoch {record.epoch}: a change must start "
                f"the epoch right after the one that chooses it",
            )
        known = stops.get(record.epoch)
        if known is None or record.slot < known[0]:
            stops[record.epoch] = (record.slot, record.node)
    for record in records:
        stop = stops.get(record.epoch)
        if stop is not None and record.slot > stop[0]:
            return Verdict(
                "stops",
                "violated",
                f"epoch {record.epoch} stopped at slot {stop[0]} (node {stop[1]} learned the "
                f"change there), but node {record.node} learned slot {record.slot} chosen in "
                f"epoch {record.epoch}",
            )
    return Verdict("stops", "holds")


def check_members(adopted: Iterable[Adopted], chosen: Iterable[Chosen] = ()) -> Verdict:
    """Every node agrees on each epoch's members and first slot, and an epoch starts right
    after the stop of the one before."""
    first: dict[int, Adopted] = {}
    for record in adopted:
        if record.configuration.epoch != record.epoch:
            return Verdict(
                "members",
                "violated",
                f"node {record.node} adopted epoch {record.epoch} with a configuration of "
                f"epoch {record.configuration.epoch}",
            )
        seen = first.setdefault(record.epoch, record)
        if (seen.configuration, seen.first_slot) != (record.configuration, record.first_slot):
            return Verdict(
                "members",
                "violated",
                f"epoch {record.epoch}: node {seen.node} adopted "
                f"{seen.configuration.describe()} from slot {seen.first_slot}, node "
                f"{record.node} {record.configuration.describe()} from slot {record.first_slot}",
            )
    stops = {record.first_slot - 1: record for record in first.values() if record.epoch > 0}
    for learned in chosen:
        change = in_batch(learned.batch)
        if change is None:
            adopted_here = stops.get(learned.slot)
            if adopted_here is not None:
                return Verdict(
                    "members",
                    "violated",
                    f"node {adopted_here.node} adopted epoch {adopted_here.epoch} from slot "
                    f"{adopted_here.first_slot}, but what was chosen at slot {learned.slot} is "
                    f"no membership change",
                )
            continue
        started = first.get(change.configuration.epoch)
        if started is None:
            continue
        new = change.configuration
        if started.first_slot != learned.slot + 1 or not (
            started.configuration.same_members(new) and started.epoch == new.epoch
        ):
            return Verdict(
                "members",
                "violated",
                f"the change chosen at slot {learned.slot} starts epoch "
                f"{change.configuration.epoch} with {change.configuration.describe()} at slot "
                f"{learned.slot + 1}, but node {started.node} adopted it with "
                f"{started.configuration.describe()} from slot {started.first_slot}",
            )
    return Verdict("members", "holds")
