"""The on-disk format of the append-only log: a header, then self-checking frames. Pure code.

Theory of operation. Everything here maps bytes to records and back with no I/O, so the file
backend, the in-memory backend and the simulator's disks share one format and one recovery rule.

A log is a header followed by frames::

    header = magic "PAXOSLOG" | u16 version | u16 identity length | identity | u32 crc32(...)
    frame  = u32 payload length | u32 crc32(payload) | payload (msgpack)

(all integers little-endian). A payload is a msgpack array whose first element is a small tag:

    [1, [round, node]]                   Promised(ballot)
    [2, slot, [round, node], [bin, ...]]  Accepted(slot, ballot, batch)
    [4, slot, bin]                       InlineSnapshot(slot, data)   (older stores only)
    [5, active]                          Rebuilding(active)
    [6, epoch, [voter, ...], [learner, ...]]  Configured(configuration)
        (epoch is [epoch, first slot] for an epoch that starts after slot 1: one started
        by a membership change; [epoch, first slot, [[node, incarnation, contact], ...]]
        when members joined through the log)
    [7, slot, size, bin(16)]             Snapshot(slot, size_bytes, checksum)

(Tag 3 is retired: it never reached a disk.)

Recovery rule. Frames are read front to back. The first frame that is not whole (too few bytes
for its header or its payload, a zero length, a CRC mismatch) is either the torn tail a crash
mid-append leaves behind, or damage. It is a torn tail if no valid frame starts anywhere after
it: a crash can only have damaged the bytes appended last, and a zero-filled tail (a file
extended by the filesystem before the data reached the disk) contains no valid frame either.
If a valid frame does follow, the bad one is in the middle of data that was once durable, and
dropping it would silently forget synced records: `CorruptLog`, with the offset. So are a frame
longer than `record_bytes_max` (no write produces one, so it is damage, not a tear) and a frame
whose CRC matches but whose payload is not a record (the bytes are exactly what was written, so
they are either another program's or a bug's, never a crash's).

The one limitation: a crash can only tear what was not yet synced, and a tear is told from
damage by looking for a valid frame after it; a client value that itself contains a well-formed
frame and lands in a torn tail therefore turns the repair into `CorruptLog`. That fails safe
(the node refuses to start and says where) and needs a crafted value, so it is accepted.

Validation is total: whatever bytes `decode_frames` and `decode_header` are given, they return
a result or raise `CorruptLog`, never anything else (a fuzz test holds them to it).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type information

from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.records import (
    Accepted,
    Batch,
    Configured,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
)
from paxosd.core.types import Ballot, ballot_round_max, node_id_max

from .errors import CorruptLog, InvalidRecord

MAGIC: Final = b"PAXOSLOG"
FORMAT_VERSION: Final = 1

TAG_PROMISED: Final = 1
TAG_ACCEPTED: Final = 2
TAG_SNAPSHOT: Final = 4
TAG_REBUILDING: Final = 5
TAG_CONFIGURED: Final = 6
TAG_SNAPSHOT_FILE: Final = 7
# A snapshot file's checksum: BLAKE2b with a 16-byte digest (storage/snapshots.py).
snapshot_checksum_bytes: Final = 16

_HEADER_FIXED: Final = struct.Struct("<8sHH")  # magic, version, identity length
_HEADER_CRC: Final = struct.Struct("<I")
_FRAME: Final = struct.Struct("<II")  # payload length, crc32(payload)
FRAME_OVERHEAD: Final = _FRAME.size

# Every payload is a msgpack fixarray of 2 to 4 elements, so its first byte is 0x92..0x94. The
# torn-tail check uses this to jump between candidate frame starts instead of trying every byte.
_PAYLOAD_FIRST_BYTE: Final = re.compile(rb"[\x92-\x94]")
# The smallest payload: [5, true] is three bytes.
_PAYLOAD_BYTES_MIN: Final = 3

# Ballot rounds, node ids and slots are stored as msgpack integers and as SQLite INTEGERs, both
# signed 64-bit at most; the upper bound keeps the two backends interchangeable.
int_max: Final = 2**63 - 1
# An identity is an opaque name such as b"cluster-7f3a/node-2"; it is compared, never parsed.
identity_bytes_max: Final = 1024
# One frame (in practice one snapshot; a batch is bounded far lower by the engine). Anything
# longer is refused at write time and treated as damage when read.
record_bytes_max: Final = 256 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Header


def encode_header(identity: bytes) -> bytes:
    """The header that starts every log of the node called `identity`."""
    if type(identity) is not bytes or not identity:
        raise InvalidRecord("identity must be non-empty bytes")
    if len(identity) > identity_bytes_max:
        raise InvalidRecord(f"identity of {len(identity)} bytes, more than {identity_bytes_max}")
    body = _HEADER_FIXED.pack(MAGIC, FORMAT_VERSION, len(identity)) + identity
    return body + _HEADER_CRC.pack(zlib.crc32(body))


def decode_header(data: bytes | bytearray | memoryview, where: str = "") -> tuple[bytes, int]:
    """(identity, header length) of the log in `data`; `CorruptLog` if it is not one this reads.

    An empty or short header is corruption, not a fresh log: logs are created by renaming a
    complete, synced header into place, so no crash leaves one behind.
    """
    view = memoryview(data)
    if len(view) < _HEADER_FIXED.size:
        raise CorruptLog(0, f"{len(view)} bytes, too short for a log header", where)
    magic, version, identity_len = _HEADER_FIXED.unpack_from(view, 0)
    if magic != MAGIC:
        raise CorruptLog(0, f"not a paxosd log (magic {bytes(magic)!r})", where)
    if version != FORMAT_VERSION:
        raise CorruptLog(
            len(MAGIC),
            f"unknown format version {version} (this code reads {FORMAT_VERSION})",
            where,
        )
    end = _HEADER_FIXED.size + identity_len
    if identity_len == 0 or identity_len > identity_bytes_max or len(view) < end + 4:
        raise CorruptLog(_HEADER_FIXED.size - 2, f"bad identity length {identity_len}", where)
    (crc,) = _HEADER_CRC.unpack_from(view, end)
    if zlib.crc32(view[:end]) != crc:
        raise CorruptLog(end, "header checksum mismatch", where)
    return bytes(view[_HEADER_FIXED.size : end]), end + 4


# ---------------------------------------------------------------------------------------------
# Records <-> payloads

_pack: Callable[[Any], bytes] = msgpack.packb


def _unpack(payload: memoryview) -> Any:
    # raw=False: strings must be valid UTF-8 and come back as str, so they fail the bytes checks
    # below instead of masquerading as batch entries.
    return msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)


class BadPayload(Exception):
    """A payload that is not a record; callers turn it into CorruptLog with the offset."""


def _check_int(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= int_max:
        raise InvalidRecord(f"{what} must be an int in [0, 2**63), got {value!r:.60}")


def _check_ballot(ballot: object) -> None:
    if type(ballot) is not Ballot:
        raise InvalidRecord(f"ballot must be a Ballot, got {type(ballot).__name__}")
    _check_int(ballot.round, "ballot.round")
    _check_int(ballot.node, "ballot.node")
    if not ballot.in_range:  # the protocol's range (core/types.py): nothing else is stored
        raise InvalidRecord(
            f"ballot {ballot.round}.{ballot.node} is outside rounds 0..{ballot_round_max} "
            f"and nodes 0..{node_id_max}"
        )


def _check_configuration(configuration: object) -> None:
    if type(configuration) is not Configuration:
        raise InvalidRecord(
            f"Configured.configuration must be a Configuration, got {type(configuration).__name__}"
        )
    # Configuration checks its own ids and order; tuples (not lists) come back as written.
    for name in ("voters", "learners"):
        if type(getattr(configuration, name)) is not tuple:
            raise InvalidRecord(f"Configuration.{name} must be a tuple")
    _check_int(configuration.epoch, "Configuration.epoch")
    _check_int(configuration.first_slot, "Configuration.first_slot")


def check_record(record: Record) -> None:
    """`InvalidRecord` unless `record` has exactly the field types and ranges the format holds.

    Exact type checks (`type(x) is int`): a bool is not a slot, a str is not a command, and a
    bytearray would come back as bytes, another type than the one written.
    """
    kind = type(record)
    if kind is Accepted:
        assert isinstance(record, Accepted)
        _check_int(record.slot, "Accepted.slot")
        _check_ballot(record.ballot)
        batch = record.batch
        if type(batch) is not tuple:
            raise InvalidRecord(f"Accepted.batch must be a tuple, got {type(batch).__name__}")
        for command in batch:
            if type(command) is not bytes:
                raise InvalidRecord(f"batch entries must be bytes, got {type(command).__name__}")
    elif kind is Promised:
        assert isinstance(record, Promised)
        _check_ballot(record.ballot)
    elif kind is Rebuilding:
        assert isinstance(record, Rebuilding)
        if type(record.active) is not bool:
            raise InvalidRecord(f"Rebuilding.active must be a bool, got {record.active!r:.40}")
    elif kind is Snapshot:
        assert isinstance(record, Snapshot)
        _check_int(record.slot, "Snapshot.slot")
        _check_int(record.size_bytes, "Snapshot.size_bytes")
        checksum = record.checksum
        if type(checksum) is not bytes or len(checksum) != snapshot_checksum_bytes:
            raise InvalidRecord(f"Snapshot.checksum must be {snapshot_checksum_bytes} bytes")
    elif kind is InlineSnapshot:
        assert isinstance(record, InlineSnapshot)
        _check_int(record.slot, "InlineSnapshot.slot")
        if type(record.data) is not bytes:
            raise InvalidRecord(
                f"InlineSnapshot.data must be bytes, got {type(record.data).__name__}"
            )
    elif kind is Configured:
        assert isinstance(record, Configured)
        _check_configuration(record.configuration)
    else:
        raise InvalidRecord(f"not a storage record: {kind.__name__}")


def encode_record(record: Record) -> bytes:
    """The msgpack payload of `record`; `InvalidRecord` if it has wrong types or is too big."""
    check_record(record)
    if type(record) is Accepted:
        ballot = record.ballot
        payload = _pack((TAG_ACCEPTED, record.slot, (ballot.round, ballot.node), record.batch))
    elif type(record) is Promised:
        payload = _pack((TAG_PROMISED, (record.ballot.round, record.ballot.node)))
    elif type(record) is Rebuilding:
        payload = _pack((TAG_REBUILDING, record.active))
    elif type(record) is Configured:
        payload = _pack((TAG_CONFIGURED, *configuration_fields(record.configuration)))
    elif type(record) is Snapshot:
        payload = _pack((TAG_SNAPSHOT_FILE, record.slot, record.size_bytes, record.checksum))
    else:
        assert type(record) is InlineSnapshot
        payload = _pack((TAG_SNAPSHOT, record.slot, record.data))
    check_size(len(payload))
    return payload


def check_size(size: int) -> None:
    if size > record_bytes_max:
        raise InvalidRecord(f"record of {size} bytes, more than {record_bytes_max}")


def pack(value: object) -> bytes:
    """msgpack-encode `value` (the storage package's one typed doorway to msgpack)."""
    return _pack(value)


def encode_batch(batch: Batch) -> bytes:
    """A batch alone, as msgpack (the SQLite backend's `log.batch` column)."""
    data = _pack(batch)
    check_size(len(data))
    return data


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """msgpack-decode `data`; raises `BadPayload` (never anything else) if it is not msgpack."""
    try:
        return _unpack(memoryview(data))
    except Exception as exc:  # msgpack raises several unrelated types; all mean "not msgpack".
        raise BadPayload(f"not a msgpack document ({type(exc).__name__})") from None


def _int_field(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= int_max:
        raise BadPayload(f"{what} is not an int in [0, 2**63)")
    return value


def _ballot_field(value: object) -> Ballot:
    if type(value) is not list or len(value) != 2:
        raise BadPayload("ballot is not [round, node]")
    ballot = Ballot(_int_field(value[0], "ballot round"), _int_field(value[1], "ballot node"))
    if not ballot.in_range:
        raise BadPayload(f"ballot {ballot} is outside the protocol's range")
    return ballot


def decode_batch(value: object) -> Batch:
    """A batch from its decoded msgpack form; raises `BadPayload` unless it is a list of bytes."""
    if type(value) is not list:
        raise BadPayload("batch is not a list")
    for command in value:
        if type(command) is not bytes:
            raise BadPayload("batch entry is not bytes")
    return tuple(value)


def configuration_fields(
    configuration: Configuration,
) -> tuple[int | tuple[Any, ...], tuple[int, ...], tuple[int, ...]]:
    """(epoch, voters, learners): a configuration as the file and SQLite backends store it.
    An epoch started by a membership change also has a first slot above 1: its epoch field
    is then [epoch, first slot], and with members that joined through the log [epoch, first
    slot, [[node, incarnation, contact], ...]], so that every record keeps its number of
    fields (the torn tail scan relies on it) and stores of the first epoch are written as
    before."""
    c = configuration
    epoch: int | tuple[Any, ...] = c.epoch
    if c.joined:
        epoch = (c.epoch, c.first_slot, [(j.node, j.incarnation, j.contact) for j in c.joined])
    elif c.first_slot != 1:
        epoch = (c.epoch, c.first_slot)
    return epoch, c.voters, c.learners


def decode_configuration(epoch: object, voters: object, learners: object) -> Configuration:
    """A configuration from its stored fields; raises `BadPayload` unless they make one."""
    if type(voters) is not list or type(learners) is not list:
        raise BadPayload("configuration members are not lists")
    if not all(type(member) is int for member in voters + learners):
        raise BadPayload("a configuration member is not an int")
    first_slot: object = 1
    joined: object = []
    if type(epoch) is list:
        if len(epoch) not in (2, 3):
            raise BadPayload("configuration epoch is not [epoch, first slot, (joined)]")
        epoch, first_slot, *rest = epoch
        joined = rest[0] if rest else []
    if type(joined) is not list or not all(type(j) is list and len(j) == 3 for j in joined):
        raise BadPayload("configuration's joined members are not [node, incarnation, contact]")
    try:
        return Configuration(
            tuple(voters),
            tuple(learners),
            _int_field(epoch, "configuration epoch"),
            _int_field(first_slot, "configuration first slot"),
            tuple(Joined(*entry) for entry in joined),
        )
    except (ValueError, TypeError) as exc:  # Configuration's own checks: ids, order, overlap
        raise BadPayload(f"not a configuration: {exc}") from None


def _decode_payload(payload: memoryview) -> Record:
    raw = unpack(payload)
    if type(raw) is not list or not raw:
        raise BadPayload("not a tagged array")
    tag = raw[0]
    size = len(raw)
    if type(tag) is int and tag == TAG_ACCEPTED and size == 4:
        return Accepted(_int_field(raw[1], "slot"), _ballot_field(raw[2]), decode_batch(raw[3]))
    if type(tag) is int and tag == TAG_PROMISED and size == 2:
        return Promised(_ballot_field(raw[1]))
    if type(tag) is int and tag == TAG_REBUILDING and size == 2:
        if type(raw[1]) is not bool:
            raise BadPayload("rebuilding flag is not a bool")
        return Rebuilding(raw[1])
    if type(tag) is int and tag == TAG_SNAPSHOT_FILE and size == 4:
        checksum = raw[3]
        if type(checksum) is not bytes or len(checksum) != snapshot_checksum_bytes:
            raise BadPayload(f"snapshot checksum is not {snapshot_checksum_bytes} bytes")
        return Snapshot(_int_field(raw[1], "slot"), _int_field(raw[2], "size"), checksum)
    if type(tag) is int and tag == TAG_SNAPSHOT and size == 3:
        if type(raw[2]) is not bytes:
            raise BadPayload("snapshot data is not bytes")
        return InlineSnapshot(_int_field(raw[1], "slot"), raw[2])
    if type(tag) is int and tag == TAG_CONFIGURED and size == 4:
        return Configured(decode_configuration(raw[1], raw[2], raw[3]))
    raise BadPayload(f"unknown record tag {tag!r:.40} with {size} fields")


def decode_record(payload: bytes | bytearray | memoryview, offset: int = 0) -> Record:
    """The record in one payload; `CorruptLog(offset, ...)` if it is not one."""
    try:
        return _decode_payload(memoryview(payload))
    except BadPayload as exc:
        raise CorruptLog(offset, f"undecodable record: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Frames


def encode_frame(record: Record) -> bytes:
    """One record, framed: length, CRC, payload. `InvalidRecord` for a record that is not valid."""
    payload = encode_record(record)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _frame_problem(view: memoryview, offset: int) -> tuple[str, bool] | None:
    """(why, is it damage whatever follows?) for the frame at `offset`; None if it checks out."""
    remaining = len(view) - offset
    if remaining < FRAME_OVERHEAD:
        return f"incomplete frame header ({remaining} bytes)", False
    length, crc = _FRAME.unpack_from(view, offset)
    if length == 0:
        return "zero-length frame", False
    if length > record_bytes_max:
        # No write produces such a frame, and a torn header is too short to be read at all.
        return f"frame length {length} exceeds record_bytes_max {record_bytes_max}", True
    if remaining - FRAME_OVERHEAD < length:
        return f"incomplete payload ({remaining - FRAME_OVERHEAD} of {length} bytes)", False
    start = offset + FRAME_OVERHEAD
    if zlib.crc32(view[start : start + length]) != crc:
        return "checksum mismatch", False
    return None


def _next_valid_frame(view: memoryview, after: int) -> int | None:
    """The offset of the first frame after `after` whose length and CRC check out, if any."""
    for match in _PAYLOAD_FIRST_BYTE.finditer(view, after + FRAME_OVERHEAD + 1):
        candidate = match.start() - FRAME_OVERHEAD
        length = _FRAME.unpack_from(view, candidate)[0]
        if length < _PAYLOAD_BYTES_MIN or length > len(view) - match.start():
            continue  # the cheap test rejects almost every candidate before the CRC is computed
        if _frame_problem(view, candidate) is None:
            return candidate
    return None


def scan_frames(
    data: bytes | bytearray | memoryview, start: int = 0, where: str = ""
) -> tuple[list[Record], list[int], int, bool]:
    """(records, frame sizes, valid length, torn tail?) of the frames in `data[start:]`.

    The valid length is where the last whole frame ends (an offset into `data`); a torn tail is
    what lies beyond it. Raises `CorruptLog` with the offset for damage that is not a torn tail
    (see the module docstring).
    """
    view = memoryview(data)
    end = len(view)
    records: list[Record] = []
    sizes: list[int] = []
    offset = start
    unpack_frame = _FRAME.unpack_from
    crc32 = zlib.crc32
    while offset < end:
        # The fast path checks a whole frame inline; anything odd goes to _frame_problem.
        if end - offset >= FRAME_OVERHEAD:
            length, crc = unpack_frame(view, offset)
            body = offset + FRAME_OVERHEAD
            stop = body + length
            if 0 < length <= record_bytes_max and stop <= end:
                payload = view[body:stop]
                if crc32(payload) == crc:
                    try:
                        records.append(_decode_payload(payload))
                    except BadPayload as exc:
                        raise CorruptLog(offset, f"undecodable record: {exc}", where) from None
                    sizes.append(stop - offset)
                    offset = stop
                    continue
        problem, fatal = _frame_problem(view, offset) or ("bad frame", True)
        if fatal:
            raise CorruptLog(offset, problem, where)
        following = _next_valid_frame(view, offset)
        if following is not None:
            raise CorruptLog(
                offset, f"{problem}, followed by a valid frame at offset {following}", where
            )
        return records, sizes, offset, True
    return records, sizes, offset, False


def decode_frames(
    data: bytes | bytearray | memoryview, start: int = 0
) -> tuple[list[Record], int, bool]:
    """(records, valid length, torn tail?) of the frames in `data[start:]`.

    Bytes in, records out: no I/O, so the simulator runs the exact on-disk format over a
    bytearray. Raises `CorruptLog` (and nothing else) for damage that is not a torn tail.
    """
    records, _sizes, valid, torn = scan_frames(data, start)
    return records, valid, torn
