"""The peer wire format: length-prefixed msgpack frames, versioned, size-limited.

A frame is a 4-byte big-endian length and a msgpack array `[tag, field, ...]`. The first frame
on every connection is the handshake `[0, "paxosd", protocol_version, cluster_id, node_id,
incarnation]` (protocol 6; a protocol-5 peer sends the first five fields, and is taken as
having no incarnation); a node from another cluster, an unknown node id, a protocol version
outside this node's window or a store the cluster does not know under that id (runtime/
incarnation.py) is refused and the connection closed, so two clusters on one network never
mix and a wiped node never votes under its old identity. A listener that takes a
handshake answers with a welcome, `[254, "paxosd", {"sqlite": version}]`, naming what a dialer
must match before it sends anything (transport.py; a node from before the welcome sends
none, and a dialer of one ignores it). Everything received is
validated field by field: a peer that sends garbage gets its connection closed (`WireError`),
it never crashes the node and never reaches the protocol core.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from paxosd.core.multi import messages as m
from paxosd.core.multi.configuration import Configuration, incarnation_max
from paxosd.core.types import Ballot, ballot_round_max, node_id_max
from paxosd.storage.codec import (
    BadPayload,
    configuration_fields,
    decode_configuration,
    snapshot_checksum_bytes,
)

# 3: SnapshotInstall carries the snapshot file's checksum. 4: leadership transfer
# (TimeoutNow, and Prepare's `transfer` flag). A version-4 node writes every version-3 message
# as version 3 did (a Prepare carries its flag only when set), so 3 and 4 run side by side;
# a transfer needs its target at 4. 5: membership change (core/multi/epochs.py: Stale, and
# configuration commands in the log). Nothing else changed, so 4 and 5 run side by side; a
# leader refuses a change while a member it hears speaks 4 (runtime/node.py). 6: the handshake
# carries the store's incarnation id (runtime/incarnation.py), and members that joined through
# the log are dialed at the addresses their record carries. Messages are as in 5, so 5 and 6
# run side by side; a leader refuses to add a joining node while a member it hears speaks 5
# (that member could neither reach the new one nor check its identity). A node at 6 first
# dials with a 6-field handshake; a listener at 5 closes that without a word (its decoder
# takes five fields), and after two such silences the dialer speaks 5 to it
# (`legacy_handshake`; runtime/transport.py).
protocol_version = 6
# The first version that takes part in a membership change.
protocol_version_members = 5
# The first version that carries identities: a node joining through the log needs it everywhere.
protocol_version_identities = 6
# The oldest peer protocol this node still speaks. Rolling upgrades need two versions side by
# side: a change to the wire bumps `protocol_version` and, while it still reads (and, to an
# older peer, writes) the previous format, keeps `protocol_version_min` one below it. A peer
# outside [protocol_version_min, protocol_version] is refused at the handshake, and told why.
protocol_version_min = 5
frame_bytes_max = 128 << 20
_length = struct.Struct(">I")


class WireError(ValueError):
    """A peer sent something that is not a valid frame or message."""


class HandshakeRefused(WireError):
    """A well-formed handshake from a peer that cannot take part (another cluster, an unknown
    id, a protocol version this node does not speak): the peer is told why. `members`: the
    configuration of a later epoch that leaves the peer out, sent with the refusal (as a
    Stale would be), so that a node removed while it could not hear it learns so."""

    def __init__(self, reason: str, members: Configuration | None = None) -> None:
        super().__init__(reason)
        self.members = members


class FrameTooLarge(WireError):
    """A message whose frame would be over `frame_bytes_max`: it cannot be sent."""


HANDSHAKE = 0
# The one frame a listener ever sends on a connection a peer dialed: why it refuses it, just
# before it closes it, so the dialer can log the reason instead of a bare disconnect.
REFUSAL = 255
refusal_reason_chars_max = 500
# The frame a listener sends once it took a handshake: what the dialer must match (the SQLite
# version, for now). The dialer checks it before it sends anything.
WELCOME = 254
welcome_field_chars_max = 100
_TAGS: dict[type, int] = {
    m.Prepare: 1,
    m.Promise: 2,
    m.Accept: 3,
    m.Accepted: 4,
    m.Nack: 5,
    m.Heartbeat: 6,
    m.Commit: 7,
    m.Ack: 8,
    m.CatchUp: 9,
    m.Entries: 10,
    m.SnapshotInstall: 11,
    m.Forward: 12,
    m.ReadIndex: 13,
    m.ReadIndexReply: 14,
    m.PreVote: 15,
    m.PreVoteReply: 16,
    m.StateQuery: 17,
    m.StateReport: 18,
    m.TimeoutNow: 19,
    m.Stale: 20,
}


def _b(ballot: Ballot) -> tuple[int, int]:
    return (ballot.round, ballot.node)


def _fields(msg: Any) -> tuple[Any, ...]:
    match msg:
        case m.Prepare(ballot=b, from_slot=f, transfer=t):
            return (_b(b), f, True) if t else (_b(b), f)  # version 3's shape unless handed over
        case m.Promise(ballot=b, accepted=acc, snapshot_slot=s, commit=c):
            return (_b(b), [(slot, _b(ab), list(batch)) for slot, ab, batch in acc], s, c)
        case m.Accept(ballot=b, slot=s, batch=batch, commit=c):
            return (_b(b), s, list(batch), c)
        case m.Accepted(ballot=b, slot=s):
            return (_b(b), s)
        case m.Nack(ballot=b, promised=p):
            return (_b(b), _b(p))
        case m.Heartbeat(ballot=b, commit=c, read_round=r):
            return (_b(b), c, r)
        case m.Commit(ballot=b, commit=c):
            return (_b(b), c)
        case m.Ack(ballot=b, read_round=r, applied=a):
            return (_b(b), r, a)
        case m.CatchUp(from_slot=f, snapshot_slot=s, snapshot_offset=o):
            return (f, s, o)
        case m.Entries(ballot=b, entries=entries, commit=c):
            return (_b(b), [(slot, list(batch)) for slot, batch in entries], c)
        case m.SnapshotInstall(ballot=b, slot=s, offset=o, total_bytes=t, checksum=c, data=d):
            return (_b(b), s, o, t, c, d)
        case m.Forward(commands=commands):
            return (list(commands),)
        case m.ReadIndex(read_id=r):
            return (r,)
        case m.ReadIndexReply(read_id=r, index=i):
            return (r, i)
        case m.PreVote(ballot=b):
            return (_b(b),)
        case m.PreVoteReply(ballot=b, granted=g):
            return (_b(b), g)
        case m.StateQuery():
            return ()
        case m.StateReport(whole=w, promised=p, accepted=acc, snapshot_slot=s):
            report = [(slot, _b(ab), list(batch)) for slot, ab, batch in acc]
            return (w, None if p is None else _b(p), report, s)
        case m.TimeoutNow(ballot=b):
            return (_b(b),)
        case m.Stale(configuration=c):
            return configuration_fields(c)
    raise TypeError(f"cannot encode {msg!r}")


def encode(msg: Any) -> bytes:
    """One message as a complete frame (length prefix included); `FrameTooLarge` if the frame
    would be over the limit every receiver enforces."""
    payload = msgpack.packb((_TAGS[type(msg)], *_fields(msg)), use_bin_type=True)
    if len(payload) > frame_bytes_max:
        raise FrameTooLarge(
            f"a frame of {len(payload)} bytes is over the {frame_bytes_max}-byte limit"
        )
    return _length.pack(len(payload)) + payload


def encode_handshake(cluster_id: str, node_id: int, incarnation: int | None = None) -> bytes:
    """This node's handshake at `protocol_version`, with its store's incarnation (six fields;
    five without one)."""
    fields: tuple[object, ...] = (HANDSHAKE, "paxosd", protocol_version, cluster_id, node_id)
    if incarnation is not None:
        fields += (incarnation,)
    payload = msgpack.packb(fields, use_bin_type=True)
    return _length.pack(len(payload)) + payload


def legacy_handshake(cluster_id: str, node_id: int) -> bytes:
    """The handshake a protocol-5 node sends (five fields, version 5): what a node at 6 says to
    a listener at 5, which refuses anything else (see `protocol_version`)."""
    payload = msgpack.packb(
        (HANDSHAKE, "paxosd", protocol_version_min, cluster_id, node_id), use_bin_type=True
    )
    return _length.pack(len(payload)) + payload


def encode_refusal(reason: str, members: Configuration | None = None) -> bytes:
    """A refusal frame: the reason, and with `members` the configuration that leaves the
    dialer out (a fourth field; a refusal without one is written as before it existed)."""
    fields: list[Any] = [REFUSAL, "paxosd", reason[:refusal_reason_chars_max]]
    if members is not None:
        fields.append(configuration_fields(members))
    payload = msgpack.packb(fields, use_bin_type=True)
    return _length.pack(len(payload)) + payload


def decode_refusal(payload: bytes) -> tuple[str, Configuration | None] | None:
    """The reason of a refusal frame and the configuration it carries, if any; None if the
    payload is anything else (a configuration that is not one is left out, the reason kept)."""
    try:
        data = msgpack.unpackb(payload, use_list=True, raw=False)
    except Exception:
        return None
    if not (
        isinstance(data, list)
        and len(data) in (3, 4)
        and data[0] == REFUSAL
        and data[1] == "paxosd"
        and type(data[2]) is str
    ):
        return None
    members = None
    if len(data) == 4 and type(data[3]) is list:
        try:
            members = _configuration(data[3])
        except WireError:
            members = None
    return data[2][:refusal_reason_chars_max], members


def encode_welcome(sqlite_version: str) -> bytes:
    payload = msgpack.packb(
        (WELCOME, "paxosd", {"sqlite": sqlite_version[:welcome_field_chars_max]}),
        use_bin_type=True,
    )
    return _length.pack(len(payload)) + payload


def decode_welcome(payload: bytes) -> dict[str, str] | None:
    """The fields of a welcome frame (only its string fields, each cut to a bounded length);
    None if the payload is anything else."""
    try:
        data = msgpack.unpackb(payload, use_list=True, raw=False)
    except Exception:
        return None
    if (
        not isinstance(data, list)
        or len(data) != 3
        or data[0] != WELCOME
        or data[1] != "paxosd"
        or not isinstance(data[2], dict)
    ):
        return None
    return {
        key: value[:welcome_field_chars_max]
        for key, value in data[2].items()
        if type(key) is str and type(value) is str
    }


def sqlite_problem(theirs: str | None, ours: str, node: int) -> str | None:
    """Why a peer that runs SQLite `theirs` cannot take part beside this node's `ours`, or None.
    A peer that does not say (one from before the welcome) is not refused here: a snapshot of
    another SQLite is still refused where it is restored."""
    if theirs is None or theirs == ours:
        return None
    return (
        f"node {node} runs SQLite {theirs}, this node runs SQLite {ours}: every node of a "
        f"cluster must run the same SQLite (a statement's result can depend on its version, "
        f"and replicas would diverge). Run node {node} on SQLite {ours} or this node on "
        f"{theirs}, whichever the cluster runs (the SQLite of the Python each node runs "
        f"from: python3 -c 'import sqlite3; print(sqlite3.sqlite_version)'; docs/sql.md, "
        f"'One SQLite')"
    )


def version_problem(version: int, node: int) -> str | None:
    """Why a peer announcing `version` cannot take part, or None if this node speaks it."""
    if protocol_version_min <= version <= protocol_version:
        return None
    speaks = (
        f"{protocol_version}"
        if protocol_version_min == protocol_version
        else f"{protocol_version_min} to {protocol_version}"
    )
    if version < protocol_version_min:
        return (
            f"node {node} speaks peer protocol {version}, older than this node's ({speaks}): "
            f"node {node} runs an older paxosd than a rolling upgrade can span; upgrade it"
        )
    return (
        f"node {node} speaks peer protocol {version}, newer than this node's ({speaks}): "
        f"this node runs an older paxosd than a rolling upgrade can span; upgrade this node"
    )


# -- decoding, with validation ----------------------------------------------------------------


def _int(value: Any) -> int:
    if type(value) is not int or value < -1 or value > 1 << 62:
        raise WireError(f"expected a slot or count, got {value!r}")
    return value


def _ballot(value: Any) -> Ballot:
    """Every ballot in the protocol's range (core/types.py), and nothing else."""
    if not isinstance(value, list) or len(value) != 2:
        raise WireError(f"expected a ballot, got {value!r:.60}")
    round_, node = value
    if type(round_) is not int or not 0 <= round_ <= ballot_round_max:
        raise WireError(f"ballot round {round_!r:.40} is outside 0..{ballot_round_max}")
    if type(node) is not int or not 0 <= node <= node_id_max:
        raise WireError(f"ballot node {node!r:.40} is outside 0..{node_id_max}")
    return Ballot(round_, node)


def _batch(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(type(c) is bytes for c in value):
        raise WireError("expected a batch of byte strings")
    return tuple(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise WireError(f"expected a list, got {type(value).__name__}")
    return value


_DECODERS: dict[int, Callable[[list[Any]], Any]] = {
    1: lambda f: m.Prepare(
        ballot=_ballot(f[0]), from_slot=_int(f[1]), transfer=len(f) > 2 and _bool(f[2])
    ),
    2: lambda f: m.Promise(
        ballot=_ballot(f[0]),
        accepted=_accepted(f[1]),
        snapshot_slot=_int(f[2]),
        commit=_int(f[3]),
    ),
    3: lambda f: m.Accept(
        ballot=_ballot(f[0]), slot=_int(f[1]), batch=_batch(f[2]), commit=_int(f[3])
    ),
    4: lambda f: m.Accepted(ballot=_ballot(f[0]), slot=_int(f[1])),
    5: lambda f: m.Nack(ballot=_ballot(f[0]), promised=_ballot(f[1])),
    6: lambda f: m.Heartbeat(ballot=_ballot(f[0]), commit=_int(f[1]), read_round=_int(f[2])),
    7: lambda f: m.Commit(ballot=_ballot(f[0]), commit=_int(f[1])),
    8: lambda f: m.Ack(ballot=_ballot(f[0]), read_round=_int(f[1]), applied=_int(f[2])),
    9: lambda f: m.CatchUp(
        from_slot=_int(f[0]), snapshot_slot=_int(f[1]), snapshot_offset=_int(f[2])
    ),
    10: lambda f: m.Entries(
        ballot=_ballot(f[0]),
        entries=tuple((_int(e[0]), _batch(e[1])) for e in map(_list, _list(f[1]))),
        commit=_int(f[2]),
    ),
    11: lambda f: m.SnapshotInstall(
        ballot=_ballot(f[0]),
        slot=_int(f[1]),
        offset=_int(f[2]),
        total_bytes=_int(f[3]),
        checksum=_checksum(f[4]),
        data=_bytes(f[5]),
    ),
    12: lambda f: m.Forward(commands=_batch(f[0])),
    13: lambda f: m.ReadIndex(read_id=_int(f[0])),
    14: lambda f: m.ReadIndexReply(read_id=_int(f[0]), index=_int(f[1])),
    15: lambda f: m.PreVote(ballot=_ballot(f[0])),
    16: lambda f: m.PreVoteReply(ballot=_ballot(f[0]), granted=_bool(f[1])),
    17: lambda f: _empty(f, m.StateQuery()),
    18: lambda f: m.StateReport(
        whole=_bool(f[0]),
        promised=None if f[1] is None else _ballot(f[1]),
        accepted=_accepted(f[2]),
        snapshot_slot=_int(f[3]),
    ),
    19: lambda f: m.TimeoutNow(ballot=_ballot(f[0])),
    20: lambda f: m.Stale(configuration=_configuration(f)),
}


def _configuration(fields: list[Any]) -> Configuration:
    if len(fields) != 3:
        raise WireError("expected [epoch, voters, learners]")
    try:
        return decode_configuration(*fields)
    except BadPayload as error:
        raise WireError(str(error)) from None


def _empty(fields: list[Any], message: Any) -> Any:
    if fields:
        raise WireError("expected no fields")
    return message


def _accepted(value: Any) -> tuple[tuple[int, Ballot, tuple[bytes, ...]], ...]:
    return tuple((_int(e[0]), _ballot(e[1]), _batch(e[2])) for e in map(_list, _list(value)))


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise WireError("expected a boolean")
    return value


def _bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise WireError("expected bytes")
    return value


def _checksum(value: Any) -> bytes:
    if type(value) is not bytes or len(value) != snapshot_checksum_bytes:
        raise WireError(f"expected a {snapshot_checksum_bytes}-byte snapshot checksum")
    return value


def decode(payload: bytes) -> Any:
    """A frame's payload (without the length prefix) as a message; WireError if invalid."""
    try:
        data = msgpack.unpackb(payload, use_list=True, raw=False, strict_map_key=True)
    except Exception as error:
        raise WireError(f"undecodable frame: {error}") from None
    if not isinstance(data, list) or not data or type(data[0]) is not int:
        raise WireError("a frame must be a non-empty array starting with a tag")
    decoder = _DECODERS.get(data[0])
    if decoder is None:
        raise WireError(f"unknown message tag {data[0]}")
    try:
        return decoder(data[1:])
    except WireError:
        raise
    except (IndexError, TypeError, ValueError, AttributeError) as error:
        raise WireError(f"malformed message (tag {data[0]}): {error}") from None


@dataclass(frozen=True, slots=True)
class Handshake:
    cluster_id: str
    node_id: int
    version: int
    # The dialer's store incarnation (runtime/incarnation.py); None from a protocol-5 peer.
    incarnation: int | None


def decode_handshake(payload: bytes) -> Handshake:
    """The handshake in `payload` (five fields from a protocol-5 peer, six from 6);
    WireError if it is not one."""
    try:
        data = msgpack.unpackb(payload, use_list=True, raw=False)
    except Exception:
        raise WireError("not a paxosd peer (undecodable handshake)") from None
    if (
        not isinstance(data, list)
        or len(data) not in (5, 6)
        or data[0] != HANDSHAKE
        or data[1] != "paxosd"
        or type(data[2]) is not int
        or type(data[3]) is not str
        or type(data[4]) is not int
    ):
        raise WireError("not a paxosd peer (bad handshake)")
    incarnation = data[5] if len(data) == 6 else None
    if len(data) == 6 and (type(incarnation) is not int or not 1 <= incarnation <= incarnation_max):
        raise WireError(f"not a paxosd peer (bad incarnation in handshake: {incarnation!r})")
    return Handshake(data[3], data[4], data[2], incarnation)


class FrameReader:
    """Splits a byte stream into frame payloads; refuses frames over the size limit."""

    def __init__(self, limit: int = frame_bytes_max) -> None:
        self.buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        frames: list[bytes] = []
        view = self.buffer
        offset = 0
        while len(view) - offset >= 4:
            (length,) = _length.unpack_from(view, offset)
            if length > self.limit:
                raise WireError(f"frame of {length} bytes is over the {self.limit}-byte limit")
            end = offset + 4 + length
            if end > len(view):
                break
            frames.append(bytes(view[offset + 4 : end]))
            offset = end
        if offset:
            del self.buffer[:offset]
        return frames
