"""Watches: every change of a key, a prefix or a range, exactly once, in order, resumable on
any node (etcd v3's watch). `hub.py` is the per-node machinery the node and the simulator
both run; `types.py` what a watch asks for and what its stream carries; `history.py` where a
watch that starts in the past reads what it missed."""

from .history import EventLog, History, MachineHistory, StoreHistory, compaction_due
from .hub import WATCH_VARIANTS, Watcher, WatchHub, WatchOptions
from .types import (
    Cancelled,
    CancelReason,
    Created,
    Events,
    Filter,
    Item,
    Progress,
    WatchRequest,
    WatchRequestError,
    check_watch,
)

__all__ = [
    "WATCH_VARIANTS",
    "CancelReason",
    "Cancelled",
    "Created",
    "EventLog",
    "Events",
    "Filter",
    "History",
    "Item",
    "MachineHistory",
    "Progress",
    "StoreHistory",
    "WatchHub",
    "WatchOptions",
    "WatchRequest",
    "WatchRequestError",
    "Watcher",
    "check_watch",
    "compaction_due",
]
