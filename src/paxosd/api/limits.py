"""Limits of the client ports, HTTP and RESP, as named values with their units last.

Every client port bounds what one client, or many, can make the node hold: open connections
(`connections_max`; at the cap a new connection gets an error and is closed, the open ones go
on being served), open connections from one source address (`connections_per_address_max`,
below the cap, so that one client cannot take every slot), time before a new connection's
first byte (`first_byte_timeout_ms`: a connection that says nothing is not a client), time
without a request (`idle_timeout_ms`), time to send one request once it has begun
(`header_timeout_ms` / `body_timeout_ms` for HTTP, `command_timeout_ms` for RESP, against
clients that trickle bytes to hold a connection), and bytes (bodies, arguments, commands).
The HTTP port keeps a few slots back (`reserved_connections`) for `GET /healthz` and
`GET /v1/status`, so that a full port can still be watched.

`Admission` is the bookkeeping both ports share: who may connect, and which refused
connections may linger long enough to read their error. A node passes one `ClientLimits`
to both servers; `ClientLimits.from_toml` reads the `[limits]` table of a node's config file:

    [limits.http]
    connections_max = 4096
    idle_timeout_ms = 60000
    allowed_hosts = ["paxosd.internal"]

    [limits.resp]
    connections_max = 4096
    idle_timeout_ms = 300000

The caps of both ports together should stay well under the process's open-file limit
(`ulimit -n`), which the node also needs for its peers and its log.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from paxosd.service import value_bytes_max

__all__ = [
    "Admission",
    "ClientLimits",
    "HttpLimits",
    "RespLimits",
    "Verdict",
    "rejected_linger_s",
    "rejected_lingering_max",
    "rejected_lingering_per_address_max",
    "source_address",
]

# A connection refused at the cap gets its error, then may linger this long so the client can
# read it before the socket is aborted (closing at once would reset it and lose the error).
rejected_linger_s: Final = 5.0
# At most this many refused connections linger per port; past it they are aborted at once, so a
# flood of connections cannot hold file descriptors through the lingering.
rejected_lingering_max: Final = 64
# ... and at most this many from one source address: a client that floods the port with
# connections fills its own share, and the refusals of everyone else still linger.
rejected_lingering_per_address_max: Final = 8
# How far a RESP bulk may exceed the state machine's value limit (see RespLimits).
bulk_slack_bytes: Final = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Limits of one node's HTTP port."""

    connections_max: int = 4096
    # Open connections from one source address (clients behind one NAT or proxy share it).
    connections_per_address_max: int = 256
    # Of `connections_max`, slots only `GET /healthz` and `GET /v1/status` may use, one
    # request per connection: a port full of other clients can still be watched.
    reserved_connections: int = 16
    # A new connection that has sent nothing this long after it opened is closed.
    first_byte_timeout_ms: int = 5_000
    # An open connection with no request in progress is closed after this long.
    idle_timeout_ms: int = 60_000
    # From a request's first byte to the end of its headers (slow-header clients).
    header_timeout_ms: int = 10_000
    # From the end of the headers to the end of the body (slow-body clients): 408.
    body_timeout_ms: int = 30_000
    # A larger body is answered 413 without being read past the limit: one maximal value
    # (1 MiB as msgpack) plus JSON's overhead rarely needs more.
    body_bytes_max: int = 1 << 20
    # Host names clients may use besides IP literals, loopback names and the members'
    # advertised HTTP hosts (any other Host is refused: DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()

    @property
    def first_byte_s(self) -> float:
        """A new connection's time to its first byte: never longer than an idle one's."""
        return min(self.first_byte_timeout_ms, self.idle_timeout_ms) / 1000

    def __post_init__(self) -> None:
        _check_positive(self, "http")
        hosts = self.allowed_hosts
        if not isinstance(hosts, tuple) or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError("http.allowed_hosts must be a list of non-empty host names")


@dataclass(frozen=True, slots=True, kw_only=True)
class RespLimits:
    """Limits of one node's RESP port. The first four bound what the scanner accepts
    (`resp_wire.RespScanner`); over them the connection gets `-ERR Protocol error` and closes."""

    # A bulk may exceed the state machine's value limit a little (`bulk_slack_bytes`), so that
    # a slightly-too-large value gets a per-command error from validation instead of a
    # protocol error that closes the connection; a larger one is not a value paxosd could
    # ever store ("too large", and the connection closes: its bytes are not read).
    bulk_bytes_max: int = value_bytes_max + bulk_slack_bytes
    command_bytes_max: int = 8 * 1024 * 1024
    command_args_max: int = 65_536
    inline_bytes_max: int = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
    # Replies a connection may owe before the server stops reading its commands.
    pending_replies_max: int = 10_000
    connections_max: int = 4096
    # Open connections from one source address (clients behind one NAT or proxy share it).
    connections_per_address_max: int = 256
    # A new connection that has sent nothing this long after it opened is closed (longer
    # than HTTP's: some client pools open connections a little before they use them).
    first_byte_timeout_ms: int = 10_000
    # A connection with no command in progress and no reply owed is closed after this long.
    idle_timeout_ms: int = 300_000
    # A command whose first bytes arrived must be complete this long after (slow senders);
    # time while the server itself paused reading does not count.
    command_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        _check_positive(self, "resp")
        if self.pending_replies_max < 2:
            raise ValueError("resp.pending_replies_max must be at least 2")

    @property
    def first_byte_s(self) -> float:
        """A new connection's time to its first byte: never longer than an idle one's."""
        return min(self.first_byte_timeout_ms, self.idle_timeout_ms) / 1000

    @property
    def pending_replies_resume(self) -> int:
        """Reading resumes once the reply queue has drained to this many entries."""
        return self.pending_replies_max // 2


class Verdict(enum.Enum):
    """What a port does with a new connection."""

    SERVE = "serve"
    # Only for the requests the reserved slots are kept for (HTTP health and status).
    SERVE_RESERVED = "serve reserved"
    REFUSE_ADDRESS = "refuse: its address has too many connections"
    REFUSE_FULL = "refuse: the port is full"


class Admission:
    """Who may connect to one port: the counts behind `connections_max`,
    `connections_per_address_max` and the reserved slots, and which refused connections may
    linger to read their error. Pure bookkeeping: the protocols call it as connections open
    and close."""

    __slots__ = (
        "connections_max",
        "lingering",
        "lingering_by_address",
        "open",
        "open_by_address",
        "per_address_max",
        "reserved",
    )

    def __init__(self, connections_max: int, per_address_max: int, reserved: int = 0) -> None:
        self.connections_max = connections_max
        # Never above the cap (a node with a low open-file limit lowers the cap alone), and
        # the reserved slots never more than a quarter of it.
        self.per_address_max = min(per_address_max, connections_max)
        self.reserved = min(reserved, connections_max // 4)
        self.open = 0
        self.open_by_address: Counter[str] = Counter()
        self.lingering = 0
        self.lingering_by_address: Counter[str] = Counter()

    def judge(self, address: str) -> Verdict:
        if self.open >= self.connections_max:
            return Verdict.REFUSE_FULL
        if self.open_by_address[address] >= self.per_address_max:
            return Verdict.REFUSE_ADDRESS
        if self.open >= self.connections_max - self.reserved:
            return Verdict.SERVE_RESERVED
        return Verdict.SERVE

    def opened(self, address: str) -> None:
        self.open += 1
        self.open_by_address[address] += 1

    def closed(self, address: str) -> None:
        self.open -= 1
        _decrement(self.open_by_address, address)

    def may_linger(self, address: str) -> bool:
        """A refused connection may linger to deliver its error (then `stopped_lingering`);
        False: abort it at once (too many linger already, from everyone or from this
        address)."""
        if (
            self.lingering >= rejected_lingering_max
            or self.lingering_by_address[address] >= rejected_lingering_per_address_max
        ):
            return False
        self.lingering += 1
        self.lingering_by_address[address] += 1
        return True

    def stopped_lingering(self, address: str) -> None:
        self.lingering -= 1
        _decrement(self.lingering_by_address, address)


def _decrement(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]  # the counters hold only addresses with connections: bounded


def source_address(peername: object) -> str:
    """The address part of a socket's peer name (IPv4 or IPv6); "?" if there is none."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return "?"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientLimits:
    """The limits of both client ports of a node."""

    http: HttpLimits = field(default_factory=HttpLimits)
    resp: RespLimits = field(default_factory=RespLimits)

    @classmethod
    def from_toml(cls, table: Mapping[str, Any]) -> ClientLimits:
        """The `[limits]` table of a config file (`{"http": {...}, "resp": {...}}`), each key
        optional. Raises ValueError naming the key for anything unknown or mistyped."""
        if not isinstance(table, Mapping):
            raise ValueError("limits must be a table")
        unknown = sorted(set(table) - {"http", "resp"})
        if unknown:
            raise ValueError(f"limits: unknown table {unknown[0]!r} (expected: http, resp)")
        return cls(
            http=_from_table(HttpLimits, table.get("http", {}), "http"),
            resp=_from_table(RespLimits, table.get("resp", {}), "resp"),
        )


def _from_table(kind: type[Any], table: Any, name: str) -> Any:
    if not isinstance(table, Mapping):
        raise ValueError(f"limits.{name} must be a table")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            expected = ", ".join(fields)
            raise ValueError(f"limits.{name}.{key} is not a known limit (expected: {expected})")
        if key == "allowed_hosts":
            if not isinstance(value, list | tuple):
                raise ValueError(f"limits.{name}.{key} must be a list of host names")
            value = tuple(value)
        elif type(value) is not int:
            raise ValueError(f"limits.{name}.{key} must be an integer, got {value!r}")
        values[key] = value
    return kind(**values)


def _check_positive(limits: Any, name: str) -> None:
    for f in dataclasses.fields(limits):
        value = getattr(limits, f.name)
        if f.name == "allowed_hosts":
            continue
        if f.name == "reserved_connections":  # 0: none kept back
            if type(value) is not int or value < 0:
                raise ValueError(f"{name}.{f.name} must be a non-negative integer, got {value!r}")
            continue
        if type(value) is not int or value < 1:
            raise ValueError(f"{name}.{f.name} must be a positive integer, got {value!r}")
