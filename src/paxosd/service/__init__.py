"""paxosd's replicated state machine: what every node applies, in log order.

Theory of operation: the consensus engine agrees on a sequence of opaque payloads; this package
gives them meaning. `router.Router` (also known as `StateMachine`) is what the engine applies:
it keeps the slot order, exactly-once sessions (`sessions`) and log time, and hands each
operation to the state machine of its namespace (`registry`): the key-value store (`kv`,
etcd's data model) and coordination (`coordination`: leased locks with fencing tokens on log
time, write-once names and decisions). `commands` encodes and decodes the log's payloads and
tells reads from writes (`is_read`), `results` defines the answers and their JSON shapes, and
`snapshot` frames checksummed snapshots. Nothing here does I/O or reads a clock: time arrives
as `AdvanceTime` commands.
"""

from .commands import (
    AdvanceTime,
    Cas,
    Command,
    DecisionGet,
    DecisionPropose,
    Delete,
    Get,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
    Noop,
    Op,
    Put,
    ReadOp,
    Request,
    WriteOp,
    decode,
    encode,
    is_read,
    key_bytes_max,
    owner_bytes_max,
    ttl_ms_max,
    ttl_ms_min,
    validate,
    value_bytes_max,
)
from .errors import BadCommand, CorruptSnapshot, ServiceError, SlotOrderError
from .results import (
    CasResult,
    DecisionResult,
    Deleted,
    Error,
    LockResult,
    NameResult,
    NotFound,
    Released,
    Result,
    Value,
    Written,
)
from .router import ANONYMOUS_PREFIX, Router, StateMachine, clients_max
from .values import JsonValue, json_equal

__all__ = [
    "ANONYMOUS_PREFIX",
    "AdvanceTime",
    "BadCommand",
    "Cas",
    "CasResult",
    "Command",
    "CorruptSnapshot",
    "DecisionGet",
    "DecisionPropose",
    "DecisionResult",
    "Delete",
    "Deleted",
    "Error",
    "Get",
    "JsonValue",
    "LockAcquire",
    "LockRefresh",
    "LockRelease",
    "LockResult",
    "LockStatus",
    "NameLookup",
    "NameRegister",
    "NameResult",
    "Noop",
    "NotFound",
    "Op",
    "Put",
    "ReadOp",
    "Released",
    "Request",
    "Result",
    "Router",
    "ServiceError",
    "SlotOrderError",
    "StateMachine",
    "Value",
    "WriteOp",
    "Written",
    "clients_max",
    "decode",
    "encode",
    "is_read",
    "json_equal",
    "key_bytes_max",
    "owner_bytes_max",
    "ttl_ms_max",
    "ttl_ms_min",
    "validate",
    "value_bytes_max",
]
