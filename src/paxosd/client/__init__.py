"""Python clients for a paxosd cluster: `Client` (blocking) and `AsyncClient` (asyncio);
transactions are built with `paxosd.client.kv`."""

from paxosd.client.aio import AsyncClient
from paxosd.client.core import (
    BadRequest,
    CasOutcome,
    FutureRevision,
    KeyValue,
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
from paxosd.client.kv import DeleteResult, PutResult, RangeResult, Txn, TxnResult
from paxosd.client.lease import Lease
from paxosd.client.sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "CasOutcome",
    "Client",
    "DeleteResult",
    "FutureRevision",
    "KeyValue",
    "Lease",
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
    "Txn",
    "TxnResult",
    "Unavailable",
]
