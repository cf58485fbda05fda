"""The multi-key checker (paxosd.check.mvcc) on small hand-made histories: it accepts a
history the store could have produced, and names each kind of wrong answer."""

from __future__ import annotations

from typing import Any

from paxosd.check.mvcc import Record, check
from paxosd.service import Request, encode
from paxosd.service.kv import KeyValue, Put, PutResponse, Range, RangeResponse

KV_A = KeyValue(b"a", 2, 2, 1, b"1", 0)


def put(seq: int, key: bytes, value: bytes) -> bytes:
    return encode(Request(client_id="w", seq=seq, op=Put(key=key, value=value)))


def write(seq: int, key: bytes, value: bytes, answer: Any, at: float) -> Record:
    return Record("w", seq, Put(key=key, value=value), at, at + 1, answer, False)


def read(seq: int, answer: Any, at: float, op: Any = None) -> Record:
    return Record("r", seq, op or Range(key=b"a"), at, at + 1, answer, True)


LOG = [put(1, b"a", b"1"), put(2, b"a", b"2")]
KV_A2 = KeyValue(b"a", 2, 3, 2, b"2", 0)


def test_a_history_the_store_could_produce_passes() -> None:
    records = [
        write(1, b"a", b"1", PutResponse(revision=2), 0),
        read(1, RangeResponse(revision=2, kvs=(KV_A,), count=1), 1.5),
        write(2, b"a", b"2", PutResponse(revision=3), 3),
        read(2, RangeResponse(revision=3, kvs=(KV_A2,), count=1), 5),
        read(3, RangeResponse(revision=3, kvs=(KV_A,), count=1), 6, Range(key=b"a", revision=2)),
    ]
    assert check(LOG, records) == []


def test_a_wrong_value_is_named() -> None:
    wrong = KV_A._replace(value=b"x")
    problems = check(LOG, [read(1, RangeResponse(revision=2, kvs=(wrong,), count=1), 1.5)])
    assert problems and "the reference answers" in problems[0]


def test_a_stale_read_is_a_real_time_violation() -> None:
    records = [
        write(2, b"a", b"2", PutResponse(revision=3), 0),  # completed at 1
        read(1, RangeResponse(revision=2, kvs=(KV_A,), count=1), 2),  # began after it
    ]
    problems = check(LOG, records)
    assert any("real time" in p for p in problems), problems


def test_an_acknowledged_write_missing_from_the_log_is_named() -> None:
    problems = check(LOG[:1], [write(2, b"a", b"2", PutResponse(revision=3), 0)])
    assert problems and "nowhere in the log" in problems[0]


def test_a_retry_in_the_log_applies_once() -> None:
    """The same request id twice in the log (a retry chosen twice) is one write."""
    records = [write(1, b"a", b"1", PutResponse(revision=2), 0)]
    assert check([LOG[0], LOG[0]], records) == []
    assert (
        check(
            [LOG[0], LOG[0], LOG[1]], [*records, write(2, b"a", b"2", PutResponse(revision=3), 3)]
        )
        == []
    )
