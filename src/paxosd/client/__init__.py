"""Python clients for a paxosd cluster: `Client` (blocking) and `AsyncClient` (asyncio)."""

from paxosd.client.aio import AsyncClient
from paxosd.client.core import (
    BadRequest,
    CasOutcome,
    KeyValue,
    LockGrant,
    LockHeld,
    LockLost,
    NotHolder,
    OutcomeUnknown,
    PaxosdError,
    Registration,
    RequestMismatch,
    Unavailable,
)
from paxosd.client.lease import Lease
from paxosd.client.sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "CasOutcome",
    "Client",
    "KeyValue",
    "Lease",
    "LockGrant",
    "LockHeld",
    "LockLost",
    "NotHolder",
    "OutcomeUnknown",
    "PaxosdError",
    "Registration",
    "RequestMismatch",
    "Unavailable",
]
