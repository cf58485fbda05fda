"""The pure log format: frames, header, the torn-tail-versus-damage rule, total decoding."""

from __future__ import annotations

import contextlib
import struct
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxosd.core.multi.records import (
    Accepted,
    InlineSnapshot,
    Promised,
    Rebuilding,
    Record,
    Snapshot,
)
from paxosd.core.types import Ballot, ballot_round_max, node_id_max
from paxosd.storage import CorruptLog, InvalidRecord, decode_frames, encode_frame
from paxosd.storage.codec import (
    FORMAT_VERSION,
    MAGIC,
    decode_header,
    decode_record,
    encode_header,
    encode_record,
    identity_bytes_max,
    record_bytes_max,
)

from .harness import raw_frame, records

B = Ballot(7, 2)
SAMPLE: list[Record] = [
    Promised(B),
    Accepted(1, B, (b"put k v", b"")),
    Accepted(2, B, ()),
    Rebuilding(True),
    InlineSnapshot(2, b"\x00state"),
    Accepted(3, Ballot(ballot_round_max, node_id_max), (bytes(range(256)),)),
]


def frames(items: list[Record]) -> bytes:
    return b"".join(encode_frame(record) for record in items)


def test_frames_round_trip() -> None:
    data = frames(SAMPLE)
    assert decode_frames(data) == (SAMPLE, len(data), False)
    assert decode_frames(bytearray(data)) == (SAMPLE, len(data), False)
    assert decode_frames(b"") == ([], 0, False)


def test_frame_layout_is_length_crc_msgpack() -> None:
    frame = encode_frame(Rebuilding(False))
    length, crc = struct.unpack_from("<II", frame)
    payload = frame[8:]
    assert length == len(payload) and crc == zlib.crc32(payload)
    assert msgpack.unpackb(payload) == [5, False]
    assert msgpack.unpackb(encode_record(Accepted(4, B, (b"x",)))) == [2, 4, [7, 2], [b"x"]]
    assert msgpack.unpackb(encode_record(Promised(B))) == [1, [7, 2]]
    assert msgpack.unpackb(encode_record(InlineSnapshot(9, b"s"))) == [4, 9, b"s"]


def test_start_offset_reports_absolute_offsets() -> None:
    prefix = b"HEADER"
    data = prefix + frames(SAMPLE)
    assert decode_frames(data, len(prefix)) == (SAMPLE, len(data), False)


@pytest.mark.parametrize("cut_back", [1, 3, 8, 9, 12])
def test_truncated_last_frame_is_a_torn_tail(cut_back: int) -> None:
    whole = frames(SAMPLE[:-1])
    data = whole + encode_frame(SAMPLE[-1])
    assert decode_frames(data[: len(data) - cut_back]) == (SAMPLE[:-1], len(whole), True)


def test_zero_filled_tail_is_a_torn_tail() -> None:
    whole = frames(SAMPLE)
    assert decode_frames(whole + bytes(4096)) == (SAMPLE, len(whole), True)
    assert decode_frames(whole + bytes(5)) == (SAMPLE, len(whole), True)


def test_crc_mismatch_on_last_frame_only_is_a_torn_tail() -> None:
    whole = frames(SAMPLE[:-1])
    data = bytearray(whole + encode_frame(SAMPLE[-1]))
    data[-1] ^= 1
    assert decode_frames(bytes(data)) == (SAMPLE[:-1], len(whole), True)


def test_damage_followed_by_valid_frames_is_corrupt() -> None:
    data = bytearray(frames(SAMPLE))
    first = len(encode_frame(SAMPLE[0]))
    data[first + 10] ^= 0x40  # inside the second frame's payload
    with pytest.raises(CorruptLog) as info:
        decode_frames(bytes(data))
    assert info.value.offset == first
    assert "checksum" in info.value.reason and "followed by a valid frame" in info.value.reason


def test_length_field_damage_pointing_past_the_end_is_still_caught() -> None:
    # The dangerous case: a length flipped upwards makes a mid-file frame look incomplete, i.e.
    # like a torn tail. The valid frames after it give the damage away.
    data = bytearray(frames(SAMPLE))
    struct.pack_into("<I", data, 0, len(data) * 4)
    with pytest.raises(CorruptLog) as info:
        decode_frames(bytes(data))
    assert info.value.offset == 0 and "incomplete payload" in info.value.reason


def test_oversized_length_is_corrupt_even_at_the_end() -> None:
    whole = frames(SAMPLE)
    bogus = struct.pack("<II", record_bytes_max + 1, 0)
    with pytest.raises(CorruptLog) as info:
        decode_frames(whole + bogus)
    assert info.value.offset == len(whole) and "record_bytes_max" in info.value.reason


def test_valid_crc_but_undecodable_payload_is_corrupt_even_at_the_end() -> None:
    whole = frames(SAMPLE)
    for junk in (b"\xc1", b"\x92\x03"):  # reserved byte; truncated msgpack array
        frame = struct.pack("<II", len(junk), zlib.crc32(junk)) + junk
        with pytest.raises(CorruptLog) as info:
            decode_frames(whole + frame)
        assert info.value.offset == len(whole) and "undecodable" in info.value.reason


@pytest.mark.parametrize(
    "payload",
    [
        [2, "1", [1, 1], []],  # slot as str
        [2, 1.0, [1, 1], []],  # slot as float
        [2, True, [1, 1], []],  # slot as bool
        [2, -1, [1, 1], []],  # negative slot
        [2, 1, [1], []],  # short ballot
        [2, 1, [1, "n"], []],  # node as str
        [2, 1, {"r": 1}, []],  # ballot as map
        [2, 1, [1, 1], ["text"]],  # batch entry as str
        [2, 1, [1, 1], b"notalist"],  # batch as bytes
        [2, 1, [1, 1], [None]],  # batch entry as nil
        [1, [1, 1], "extra"],  # wrong arity
        [4, 1, "text"],  # snapshot data as str
        [3, 2**64 - 1],  # out of the signed range
        [1, [ballot_round_max + 1, 1]],  # a round the protocol cannot carry
        [1, [1, node_id_max + 1]],  # a node id the protocol cannot carry
        [6, 0, [], []],  # a configuration without voters
        [6, 0, [2, 1], []],  # voters out of order
        [6, 0, [1, 1], []],  # a voter twice
        [6, 0, [1, 2], [2]],  # a voter that is also a learner
        [6, 0, [1, "2"], []],  # a voter as str
        [6, 0, [1, True], []],  # a voter as bool
        [6, 0, [1, node_id_max + 1], []],  # a node id the protocol cannot carry
        [6, -1, [1], []],  # a negative epoch
        [6, 0, {"1": 1}, []],  # voters as a map
        [6, 0, [1]],  # wrong arity
        [9, 1],  # unknown tag
        ["2", 1],  # tag as str
        {"tag": 2},  # not an array
        [],  # empty
        7,  # scalar
    ],
)
def test_decoding_checks_types(payload: object) -> None:
    with pytest.raises(CorruptLog):
        decode_frames(raw_frame(payload) + frames(SAMPLE))
    with pytest.raises(CorruptLog):
        decode_record(msgpack.packb(payload))


def test_header_round_trip_and_errors() -> None:
    header = encode_header(b"cluster/node-3")
    assert decode_header(header + b"rest") == (b"cluster/node-3", len(header))
    with pytest.raises(CorruptLog, match="too short"):
        decode_header(header[:5])
    with pytest.raises(CorruptLog, match="not a paxosd log"):
        decode_header(b"SQLite format 3\x00" + header)
    with pytest.raises(CorruptLog, match="checksum"):
        damaged = bytearray(header)
        damaged[14] ^= 1
        decode_header(bytes(damaged))
    with pytest.raises(CorruptLog, match="bad identity length"):
        decode_header(header[:-3])
    future = bytearray(header)
    struct.pack_into("<H", future, len(MAGIC), FORMAT_VERSION + 1)
    struct.pack_into("<I", future, len(future) - 4, zlib.crc32(future[:-4]))
    with pytest.raises(CorruptLog, match="unknown format version 2") as info:
        decode_header(bytes(future))
    assert info.value.offset == len(MAGIC)


def test_header_refuses_bad_identities() -> None:
    for identity in (b"", "text", b"x" * (identity_bytes_max + 1)):
        with pytest.raises(InvalidRecord):
            encode_header(identity)  # type: ignore[arg-type]


def test_encode_refuses_oversized_records(monkeypatch: pytest.MonkeyPatch) -> None:
    import paxosd.storage.codec as codec

    monkeypatch.setattr(codec, "record_bytes_max", 100)
    with pytest.raises(InvalidRecord, match="more than 100"):
        encode_frame(InlineSnapshot(1, bytes(200)))


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=8))
def test_any_record_round_trips(items: list[Record]) -> None:
    data = frames(items)
    assert decode_frames(data) == (items, len(data), False)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_any_truncation_keeps_exactly_the_whole_frames(items: list[Record], data: st.DataObject):
    encoded = [encode_frame(record) for record in items]
    blob = b"".join(encoded)
    cut = data.draw(st.integers(0, len(blob)))
    got, valid, torn = decode_frames(blob[:cut])
    boundaries = [sum(map(len, encoded[:n])) for n in range(len(encoded) + 1)]
    whole = max(n for n, end in enumerate(boundaries) if end <= cut)
    assert (got, valid, torn) == (items[:whole], boundaries[whole], cut != boundaries[whole])


@settings(max_examples=400, deadline=None)
@given(st.lists(records, min_size=1, max_size=6), st.data())
def test_any_single_byte_damage_is_caught(items: list[Record], data: st.DataObject) -> None:
    """A damaged byte in any frame but the last is CorruptLog; in the last, a torn tail (unless
    the damage makes its length impossible, which no crash does: CorruptLog)."""
    encoded = [encode_frame(record) for record in items]
    blob = bytearray(b"".join(encoded))
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    last_start = len(blob) - len(encoded[-1])
    (last_length,) = struct.unpack_from("<I", blob, last_start)
    if at >= last_start and last_length <= record_bytes_max:
        assert decode_frames(bytes(blob)) == (items[:-1], last_start, True)
    else:
        with pytest.raises(CorruptLog):
            decode_frames(bytes(blob))


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_cleanly_or_raise_corrupt_log(blob: bytes) -> None:
    try:
        got, valid, torn = decode_frames(blob)
    except CorruptLog:
        return
    assert 0 <= valid <= len(blob) and torn == (valid < len(blob))
    assert all(type(record) in (Promised, Accepted, Rebuilding, Snapshot) for record in got)


@settings(max_examples=500, deadline=None)
@given(st.lists(records, max_size=4), st.binary(max_size=40), st.integers(0, 200))
def test_valid_frames_plus_garbage_never_crash(items: list[Record], junk: bytes, at: int) -> None:
    blob = bytearray(frames(items))
    at = min(at, len(blob))
    blob[at:at] = junk
    with contextlib.suppress(CorruptLog):
        decode_frames(bytes(blob))
    with contextlib.suppress(CorruptLog):
        decode_header(bytes(blob))
