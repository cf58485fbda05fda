"""Python clients for a paxosd cluster: `Client` (blocking) and `AsyncClient` (asyncio);
transactions are built with `paxosd.client.kv`."""

from paxosd.client.aio import AsyncClient, AsyncWatch
from paxosd.client.core import (
    BadRequest,
    CasOutcome,
    FutureRevision,
    KeyValue,
    LeaseNotFound,
    LockGrant,
    LockHeld,
    LockLost,
    NotHolder,
    OutcomeUnknown,
    PaxosdError,
    Registration,
    RequestMismatch,
    RevisionCompacted,
    Unavailable,
)
from paxosd.client.election import Election, ElectionLost, Leader, Leadership
from paxosd.client.kv import DeleteResult, PutResult, RangeResult, Txn, TxnResult
from paxosd.client.lease import Lease
from paxosd.client.session import AsyncSession, Session, SessionLost
from paxosd.client.sync import Client, Watch
from paxosd.client.watch import WatchCompacted, WatchEvent

__all__ = [
    "AsyncClient",
    "AsyncSession",
    "AsyncWatch",
    "BadRequest",
    "CasOutcome",
    "Client",
    "DeleteResult",
    "Election",
    "ElectionLost",
    "FutureRevision",
    "KeyValue",
    "Leader",
    "Leadership",
    "Lease",
    "LeaseNotFound",
    "LockGrant",
    "LockHeld",
    "LockLost",
    "NotHolder",
    "OutcomeUnknown",
    "PaxosdError",
    "PutResult",
    "RangeResult",
    "Registration",
    "RequestMismatch",
    "RevisionCompacted",
    "Session",
    "SessionLost",
    "Txn",
    "TxnResult",
    "Unavailable",
    "Watch",
    "WatchCompacted",
    "WatchEvent",
]
