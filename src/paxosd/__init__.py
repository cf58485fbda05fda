"""paxosd: fault-tolerant consensus you can run, use and learn from.

from paxosd import Client
client = Client()            # the local cluster started by `paxosd up`
client.put("x", 1)
"""

from paxosd.client import (
    AsyncClient,
    BadRequest,
    CasOutcome,
    Client,
    KeyValue,
    LockGrant,
    NotHolder,
    OutcomeUnknown,
    PaxosdError,
    Registration,
    Unavailable,
)

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
