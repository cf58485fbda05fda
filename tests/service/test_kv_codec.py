"""etcd-model requests in the log: compact, symmetric, and refused with etcd's errors."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given

from paxosd.service import BadCommand, Request, decode, encode, is_read, validate
from paxosd.service.codec import key_bytes_max
from paxosd.service.kv import (
    Compact,
    CompactionResponse,
    Compare,
    CompareTarget,
    DeleteRange,
    DeleteRangeResponse,
    GrpcCode,
    InvalidRequest,
    KeyValue,
    Put,
    PutResponse,
    Range,
    RangeResponse,
    SortOrder,
    SortTarget,
    Txn,
    TxnResponse,
)
from paxosd.service.kv.checks import check_put, check_range
from paxosd.service.kv.codec import (
    _PUT_FIELDS,
    _RANGE_FIELDS,
    PUT_TAG,
    RANGE_TAG,
    _flat,
    encode_put,
    encode_range,
    plain_put,
    plain_range,
    response_from_raw,
    response_to_raw,
)
from paxosd.service.kv.errors import compacted
from paxosd.service.results import result_from_raw

from .helpers import fuzz, strict
from .kv_strategies import kv_ops

CAS = Txn(
    compare=(Compare(key=b"k", target=CompareTarget.MOD, mod_revision=4),),
    success=(Put(key=b"k", value=b"new", prev_kv=True),),
    failure=(Range(key=b"k"),),
)
EVERY_OP = [
    Range(key=b"k"),
    Range(
        key=b"a",
        range_end=b"\0",
        limit=10,
        revision=7,
        sort_order=SortOrder.DESCEND,
        sort_target=SortTarget.CREATE,
        serializable=True,
        keys_only=True,
        count_only=False,
        min_mod_revision=1,
        max_mod_revision=2,
        min_create_revision=3,
        max_create_revision=4,
    ),
    Put(key=b"k", value=b"\x00\xffbinary"),
    Put(key=b"k", ignore_value=True, ignore_lease=True, prev_kv=True),
    DeleteRange(key=b"a", range_end=b"b", prev_kv=True),
    CAS,
    Txn(),
    Txn(success=(Txn(compare=(Compare(key=b"x", target=CompareTarget.VALUE, value=b"v"),)),)),
    Compact(revision=5, physical=True),
]


@pytest.mark.parametrize("op", EVERY_OP, ids=lambda op: type(op).__name__)
def test_every_op_round_trips(op: object) -> None:
    """decode(encode(op)) == op, bare and inside a client request."""
    assert decode(encode(op)) == op
    request = Request(client_id="c", seq=1, op=op)
    assert decode(encode(request)) == request


@given(kv_ops)
@fuzz(400)
def test_random_ops_round_trip_or_are_refused_the_same_way(op: object) -> None:
    """Whatever the op, encode and decode agree: it survives exactly, or both refuse it."""
    try:
        payload = encode(op)
    except BadCommand as refused:
        assert isinstance(refused, InvalidRequest)
        return
    assert decode(payload) == op
    assert strict(decode(encode(decode(payload)))) == strict(decode(payload))


def test_a_plain_put_is_three_items() -> None:
    """The commit path's write carries no defaults: [15, key, value]."""
    assert msgpack.unpackb(encode(Put(key=b"k", value=b"v"))) == [15, b"k", b"v"]
    payload = encode(Request(client_id="c1", seq=1, op=Put(key=b"k", value=b"v")))
    assert len(payload) <= 14  # bytes cost 2 bytes of framing each (msgpack bin 8)


def _put_by_the_general_checks(op: Put) -> list[object]:
    check_put(op)
    return _flat(PUT_TAG, op, _PUT_FIELDS)


PUTS_NEAR_THE_FAST_PATH = [
    Put(key=b"k", value=b"v"),
    Put(key=b"k", value=b""),
    Put(key=b"k" * key_bytes_max, value=b"v"),
    Put(key=b"k" * (key_bytes_max + 1), value=b"v"),
    Put(key=b"", value=b"v"),
    Put(key="k", value=b"v"),  # type: ignore[arg-type]
    Put(key=bytearray(b"k"), value=b"v"),  # type: ignore[arg-type]
    Put(key=b"k", value="v"),  # type: ignore[arg-type]
    Put(key=b"k", value=b"v", lease=7),
    Put(key=b"k", value=b"v", lease=False),
    Put(key=b"k", value=b"v", lease=0.0),  # type: ignore[arg-type]
    Put(key=b"k", value=b"v", prev_kv=True),
    Put(key=b"k", value=b"v", prev_kv=0),  # type: ignore[arg-type]
    Put(key=b"k", ignore_value=True),
    Put(key=b"k", value=b"v", ignore_lease=True),
    Put(key=b"k", value=b"v", ignore_lease=None),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("op", PUTS_NEAR_THE_FAST_PATH, ids=repr)
def test_a_plain_put_encodes_as_the_general_checks_would(op: Put) -> None:
    """The commit path checks a plain put inline: it builds the same array and refuses the
    same puts, with the same error, as the checks every other op passes."""
    try:
        expected = _put_by_the_general_checks(op)
    except BadCommand as refused:
        with pytest.raises(type(refused)) as caught:
            encode_put(op)
        assert str(caught.value) == str(refused)
        return
    assert strict(encode_put(op)) == strict(expected)


RANGES_NEAR_THE_FAST_PATH = [
    Range(key=b"k"),
    Range(key=b"k" * key_bytes_max),
    Range(key=b"k" * (key_bytes_max + 1)),
    Range(key=b""),
    Range(key="k"),  # type: ignore[arg-type]
    Range(key=b"k", range_end=b"\0"),
    Range(key=b"k", limit=1),
    Range(key=b"k", limit=False),
    Range(key=b"k", revision=0.0),  # type: ignore[arg-type]
    Range(key=b"k", sort_order=SortOrder.DESCEND),
    Range(key=b"k", sort_order=0),  # type: ignore[arg-type]
    Range(key=b"k", sort_target=7),  # type: ignore[arg-type]
    Range(key=b"k", serializable=True),
    Range(key=b"k", keys_only=0),  # type: ignore[arg-type]
    Range(key=b"k", count_only=True),
    Range(key=b"k", max_create_revision=3),
]


@pytest.mark.parametrize("op", RANGES_NEAR_THE_FAST_PATH, ids=repr)
def test_a_plain_range_encodes_as_the_general_checks_would(op: Range) -> None:
    """A single-key read is checked at once: the same array, the same refusals, as the
    checks every other range passes."""
    try:
        check_range(op)
        expected = _flat(RANGE_TAG, op, _RANGE_FIELDS)
    except BadCommand as refused:
        with pytest.raises(type(refused)) as caught:
            encode_range(op)
        assert str(caught.value) == str(refused)
        return
    assert strict(encode_range(op)) == strict(expected)


def test_the_cheaper_range_constructor_builds_the_same_range() -> None:
    """What the RESP server builds for GET is the range the dataclass builds, and a plain
    range validates as any other does."""
    built, made = plain_range(b"k"), Range(key=b"k")
    assert built == made and hash(built) == hash(made) and strict(built) == strict(made)
    validate(built)
    with pytest.raises(BadCommand, match=r"Range\.key is empty"):
        validate(plain_range(b""))
    with pytest.raises(BadCommand, match="more than 1024"):
        validate(plain_range(b"k" * 1025))


def test_the_cheaper_put_constructor_builds_the_same_put() -> None:
    """What the decoder and the RESP server build for a plain put is the put the dataclass
    builds: equal, same hash, same repr."""
    built, made = plain_put(b"k", b"v"), Put(key=b"k", value=b"v")
    assert built == made and hash(built) == hash(made) and strict(built) == strict(made)


def test_reads_are_told_by_the_operation() -> None:
    """A range reads; a transaction reads only if no op at any depth writes; the rest write."""
    assert is_read(Range(key=b"k"))
    assert is_read(Txn(success=(Range(key=b"a"),), failure=(Txn(success=(Range(key=b"b"),)),)))
    assert not is_read(CAS)
    assert not is_read(Txn(failure=(Txn(success=(DeleteRange(key=b"b"),)),)))
    assert not is_read(Put(key=b"k"))
    assert not is_read(DeleteRange(key=b"k"))
    assert not is_read(Compact(revision=1))
    assert not is_read(Request(client_id="c", seq=1, op=Range(key=b"k")))


def _refusal(op: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        encode(op)
    return caught.value


def test_etcd_errors_for_state_independent_refusals() -> None:
    """Each request etcd refuses before proposing is refused with etcd's code and text."""
    cases = [
        (Range(key=b""), "etcdserver: key is not provided"),
        (Put(key=b""), "etcdserver: key is not provided"),
        (DeleteRange(key=b""), "etcdserver: key is not provided"),
        (Put(key=b"k", value=b"v", ignore_value=True), "etcdserver: value is provided"),
        (Put(key=b"k", lease=5, ignore_lease=True), "etcdserver: lease is provided"),
        (Txn(success=(None,)), "etcdserver: key not found"),  # type: ignore[arg-type]
    ]
    for op, message in cases:
        error = _refusal(op).error
        assert error.message == message
        assert error.grpc_code is GrpcCode.INVALID_ARGUMENT


def test_too_many_operations_names_the_limit_and_the_count() -> None:
    """129 puts in a branch: etcd's message, and a detail naming txn_ops_max and 129. The log
    itself takes up to the largest limit a node may be configured with."""
    ops = tuple(Put(key=b"k%d" % i) for i in range(129))
    with pytest.raises(InvalidRequest) as caught:
        validate(Txn(success=ops))
    error = caught.value.error
    assert error.message == "etcdserver: too many operations in txn request"
    assert error.grpc_code is GrpcCode.INVALID_ARGUMENT
    assert "129 operations" in error.detail and "txn_ops_max = 128" in error.detail
    validate(Txn(success=ops[:128]))
    assert decode(encode(Txn(success=ops))) == Txn(success=ops)
    many = tuple(Put(key=b"k%d" % i) for i in range(10_001))
    assert "txn_ops_max = 10000" in _refusal(Txn(failure=many)).error.detail


def test_a_nested_transaction_gets_what_its_parent_left() -> None:
    """etcd's budget: a nested txn may have at most txn_ops_max minus its parent's count."""
    inner = Txn(success=tuple(Put(key=b"i%d" % i) for i in range(100)))
    outer = Txn(success=(inner, *(Put(key=b"o%d" % i) for i in range(27))))  # 28 ops
    validate(outer)
    crowded = Txn(success=(inner, *(Put(key=b"o%d" % i) for i in range(29))))  # 30 ops
    with pytest.raises(InvalidRequest, match="98 operations its parent left"):
        validate(crowded)


def test_duplicate_keys_are_refused_as_etcd_refuses_them() -> None:
    """Two puts of a key, or a put and a delete covering it, in one branch: refused. The two
    branches of a nested transaction may write the same key; two deletes may overlap."""
    put = Put(key=b"k", value=b"1")
    refused = [
        Txn(success=(put, put)),
        Txn(failure=(put, DeleteRange(key=b"k"))),
        Txn(success=(DeleteRange(key=b"a", range_end=b"z"), put)),
        Txn(success=(put, Txn(success=(put,)))),
        Txn(success=(DeleteRange(key=b"k"), Txn(failure=(put,)))),
        Txn(success=(DeleteRange(key=b"a", range_end=b"\0"), put)),
    ]
    for op in refused:
        error = _refusal(op).error
        assert error.message == "etcdserver: duplicate key given in txn request"
        assert "b'k'" in error.detail
    allowed = [
        Txn(success=(put,), failure=(put,)),
        Txn(success=(Txn(success=(put,), failure=(put,)),)),
        Txn(success=(DeleteRange(key=b"k"), DeleteRange(key=b"a", range_end=b"z"))),
        Txn(success=(Range(key=b"k"), put, Range(key=b"k"))),
    ]
    for op in allowed:
        assert decode(encode(op)) == op


def test_transaction_bytes_are_limited() -> None:
    """txn_bytes_max bounds the keys, values and range ends of a whole transaction."""
    big = Txn(success=tuple(Put(key=b"k%d" % i, value=b"v" * 1000) for i in range(100)))
    validate(big)
    with pytest.raises(InvalidRequest, match="txn_bytes_max = 50000") as caught:
        from paxosd.service.kv import KvLimits

        validate(big, KvLimits(txn_bytes_max=50_000))
    assert caught.value.error.message == "etcdserver: request is too large"


def test_compares_must_be_well_formed() -> None:
    """An unknown target or result, or an operand other than the target's: a clear error."""
    for compare, field in [
        (Compare(key=b"k", target=7), "target"),  # type: ignore[arg-type]
        (Compare(key=b"k", target=CompareTarget.MOD, result=9), "result"),  # type: ignore[arg-type]
        (Compare(key=b"k", target=CompareTarget.MOD, version=3), "version"),
        (Compare(key=b"k", target=CompareTarget.VALUE, value="text"), "value"),  # type: ignore[arg-type]
        (Compare(key=b"", target=CompareTarget.MOD), "key"),
    ]:
        refusal = _refusal(Txn(compare=(compare,)))
        assert refusal.field.endswith(field), refusal.field
    unknown = msgpack.packb([17, [[7, 0, b"k", 1]]])
    with pytest.raises(BadCommand, match="target"):
        decode(unknown)


BAD_PAYLOADS = [
    ([14, "text key"], "Range.key"),
    ([14, b"k", b"", 0, 0, 9], "Range.sort_order"),
    ([14, b"k", b"", 0, 0, 0, 0, 1], "Range.serializable"),
    ([15, b"k", "text"], "Put.value"),
    ([15, b"k", b"v", 2**63], "Put.lease"),
    ([15], "Put"),
    ([16, b"k", b"", 1], "DeleteRange.prev_kv"),
    ([17, "not a list"], "Txn.compare"),
    ([17, [], [[99, b"k"]]], "Txn.success[0].tag"),
    ([17, [], [[15, b"k"], [15, b"k"]]], "Txn.success"),
    ([18, "1"], "Compact.revision"),
    ([0, "c", 1, [15, b""]], "Put.key"),
]


@pytest.mark.parametrize(("raw", "field"), BAD_PAYLOADS)
def test_bad_payloads_name_the_field(raw: list[object], field: str) -> None:
    """A payload encode could not have made is refused by decode, naming the field."""
    with pytest.raises(InvalidRequest) as caught:
        decode(msgpack.packb(raw))
    assert caught.value.field == field


def test_transactions_nest_only_so_deep() -> None:
    """A transaction nested past txn_depth_max is refused, never a RecursionError."""
    op: object = [15, b"k"]
    for _ in range(200):
        op = [17, [], [op]]
    with pytest.raises(BadCommand, match="nested deeper"):
        decode(msgpack.packb(op))


KV = KeyValue(b"k", 2, 5, 3, b"v", 0)
ANSWERS = [
    RangeResponse(revision=9, kvs=(KV, KV._replace(key=b"l")), more=True, count=4),
    PutResponse(revision=6, prev_kv=KV),
    PutResponse(revision=6),
    DeleteRangeResponse(revision=7, deleted=2, prev_kvs=(KV,)),
    TxnResponse(
        revision=8,
        succeeded=False,
        responses=(RangeResponse(revision=8), TxnResponse(revision=8, succeeded=True)),
    ),
    CompactionResponse(revision=3),
    compacted(2, 5),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: type(a).__name__)
def test_answers_survive_the_session_table(answer: object) -> None:
    """Cached answers travel in snapshots: to raw and back, exactly; through the results
    table as well."""
    assert response_from_raw(response_to_raw(answer)) == answer
    assert result_from_raw(response_to_raw(answer)) == answer
