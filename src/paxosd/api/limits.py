"""Limits of the client ports, HTTP and RESP, as named values with their units last.

Every client port bounds what one client, or many, can make the node hold: open connections
(`connections_max`; at the cap a new connection gets an error and is closed, the open ones go
on being served), time without a request (`idle_timeout_ms`), time to send one request once it
has begun (`header_timeout_ms` / `body_timeout_ms` for HTTP, `command_timeout_ms` for RESP,
against clients that trickle bytes to hold a connection), and bytes (bodies, arguments,
commands). A node passes one `ClientLimits` to both servers; `ClientLimits.from_toml` reads
the `[limits]` table of a node's config file:

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ClientLimits",
    "HttpLimits",
    "RespLimits",
    "rejected_linger_s",
    "rejected_lingering_max",
]

# A connection refused at the cap gets its error, then may linger this long so the client can
# read it before the socket is aborted (closing at once would reset it and lose the error).
rejected_linger_s: Final = 5.0
# At most this many refused connections linger per port; past it they are aborted at once, so a
# flood of connections cannot hold file descriptors through the lingering.
rejected_lingering_max: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Limits of one node's HTTP port."""

    connections_max: int = 4096
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

    def __post_init__(self) -> None:
        _check_positive(self, "http")
        hosts = self.allowed_hosts
        if not isinstance(hosts, tuple) or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError("http.allowed_hosts must be a list of non-empty host names")


@dataclass(frozen=True, slots=True, kw_only=True)
class RespLimits:
    """Limits of one node's RESP port. The first four bound what the scanner accepts
    (`resp_wire.RespScanner`); over them the connection gets `-ERR Protocol error` and closes."""

    # A bulk may exceed the state machine's value limit (1 MiB) so that a slightly-too-large
    # value gets a per-command error from validation instead of a protocol error that closes
    # the connection; anything past these is not a command paxosd could accept.
    bulk_bytes_max: int = 4 * 1024 * 1024
    command_bytes_max: int = 8 * 1024 * 1024
    command_args_max: int = 65_536
    inline_bytes_max: int = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
    # Replies a connection may owe before the server stops reading its commands.
    pending_replies_max: int = 10_000
    connections_max: int = 4096
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
    def pending_replies_resume(self) -> int:
        """Reading resumes once the reply queue has drained to this many entries."""
        return self.pending_replies_max // 2


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
        if type(value) is not int or value < 1:
            raise ValueError(f"{name}.{f.name} must be a positive integer, got {value!r}")
