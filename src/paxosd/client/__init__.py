"""Python clients for a paxosd cluster: `Client` (blocking) and `AsyncClient` (asyncio)."""

from paxosd.client.aio import AsyncClient
from paxosd.client.core import (
    BadRequest,
    CasOutcome,
    KeyValue,
    LockGrant,
    NotHolder,
    OutcomeUnknown,
    PaxosdError,
    Registration,
    Unavailable,
)
from paxosd.client.sync import Client

__all__ = [
    "AsyncClient",
    "BadRequest",
    "CasOutcome",
    "Client",
    "KeyValue",
    "LockGrant",
    "NotHolder",
    "OutcomeUnknown",
    "PaxosdError",
    "Registration",
    "Unavailable",
]
