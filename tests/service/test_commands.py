"""The command codec: compact, symmetric, and strict (BadCommand naming the field, nothing else)."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paxosd.service import (
    AdvanceTime,
    BadCommand,
    Cas,
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
    Put,
    Request,
    decode,
    encode,
    key_bytes_max,
    owner_bytes_max,
    ttl_ms_max,
    ttl_ms_min,
    validate,
    value_bytes_max,
)
from paxosd.service.commands import command_bytes_max, decode_parts, time_ms_max
from paxosd.service.values import value_depth_max

from .helpers import fuzz, strict
from .strategies import client_ops, json_values, requests, times

EVERY_COMMAND = [
    Get(key="k"),
    Put(key="k", value={"a": [1, 2.5, None, True, "s"]}),
    Delete(key="k"),
    Cas(key="k", expected=None, value=1),
    Cas(key="k", expected=[1], value={"x": False}),
    LockAcquire(name="l", owner="o", ttl_ms=1000),
    LockRefresh(name="l", owner="o", ttl_ms=100),
    LockRelease(name="l", owner="o"),
    LockStatus(name="l"),
    NameRegister(name="n", owner="o"),
    NameLookup(name="n"),
    DecisionPropose(id="d", value="v"),
    DecisionGet(id="d"),
    AdvanceTime(now_ms=123),
    Noop(),
    Request(client_id="c", seq=7, op=Put(key="k", value="v")),
]


def raw(*fields: object) -> bytes:
    """Hand-packed payloads, to reach decode paths encode would never produce."""
    return msgpack.packb(list(fields))


@pytest.mark.parametrize("command", EVERY_COMMAND, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: object) -> None:
    """decode(encode(c)) == c, with value types preserved exactly (1 stays 1, True stays True)."""
    assert strict(decode(encode(command))) == strict(command)


def test_noop_is_the_empty_payload() -> None:
    """Noop encodes as b"", the engine's filler payload, and b"" decodes as Noop."""
    assert encode(Noop()) == b""
    assert decode(b"") == Noop()


def test_encoding_is_compact() -> None:
    """Positional fields and small tags: a small put request costs only a few bytes of framing."""
    payload = encode(Request(client_id="c1", seq=1, op=Put(key="k", value="v")))
    assert len(payload) <= 12


@given(st.one_of(client_ops(), requests, times))
@fuzz(300)
def test_random_commands_round_trip(command: object) -> None:
    """Every valid command survives encode/decode exactly, whatever its values."""
    assert strict(decode(encode(command))) == strict(command)


@given(st.one_of(client_ops(), requests, times))
@fuzz(100)
def test_the_apply_path_decodes_a_request_to_its_parts(command: object) -> None:
    """What the state machine applies, decoded without building the `Request`: its client id,
    seq and op; any other command whole, with no client id."""
    parts = decode_parts(encode(command))
    if isinstance(command, Request):
        assert strict(parts) == strict((command.client_id, command.seq, command.op))
    else:
        assert strict(parts) == strict((None, 0, command))
    assert decode_parts(b"") == (None, 0, Noop())


# Wrong types and out-of-range fields, each with the field BadCommand must name.
BAD_PAYLOADS = [
    (raw(1, 5), "Get.key"),
    (raw(1, ""), "Get.key"),
    (raw(2, "k"), "Put"),
    (raw(2, "k", "v", "extra"), "Put"),
    (raw(2, b"k", "v"), "Put.key"),
    (raw(2, "k", b"bytes"), "Put.value"),
    (raw(2, "k", {b"bytes key": 1}), "Put.value"),
    (raw(2, "k", {1: "int key"}), "payload"),  # msgpack's strict_map_key refuses it first
    (raw(2, "k", math.nan), "Put.value"),
    (raw(2, "k", math.inf), "Put.value"),
    (raw(2, "k", msgpack.ExtType(5, b"x")), "Put.value"),
    (raw(4, "k", b"x", 1), "Cas.expected"),
    (raw(5, "l", "o", 99), "LockAcquire.ttl_ms"),
    (raw(5, "l", "o", 3_600_001), "LockAcquire.ttl_ms"),
    (raw(5, "l", "o", 1000.0), "LockAcquire.ttl_ms"),
    (raw(5, "l", "o", True), "LockAcquire.ttl_ms"),
    (raw(6, "l", None, 1000), "LockRefresh.owner"),
    (raw(7, "l", ""), "LockRelease.owner"),
    (raw(9, "n", "x" * (owner_bytes_max + 1)), "NameRegister.owner"),
    (raw(11, "d", None), "DecisionPropose.value"),
    (raw(13, -1), "AdvanceTime.now_ms"),
    (raw(13, time_ms_max + 1), "AdvanceTime.now_ms"),
    (raw(99, "k"), "command.tag"),
    (raw(True, "k"), "command.tag"),
    (raw(1.0, "k"), "command.tag"),
    (raw(), "command"),
    (msgpack.packb({"tag": 1}), "command"),
    (msgpack.packb("Get"), "command"),
    (raw(0, "c", 1), "Request"),
    (raw(0, 5, 1, [1, "k"]), "Request.client_id"),
    (raw(0, "c", -1, [1, "k"]), "Request.seq"),
    (raw(0, "c", "1", [1, "k"]), "Request.seq"),
    (raw(0, "c", 1, [13, 5]), "Request.op.tag"),
    (raw(0, "c", 1, [0, "c", 1, [1, "k"]]), "Request.op.tag"),
    (raw(0, "c", 1, "Get k"), "Request.op"),
    (raw(0, "c", 1, [1, 5]), "Get.key"),
    (b"\xc1", "payload"),
    (b"\x92\x01", "payload"),
    (raw(1, "k") + b"\x00", "payload"),
    (b"\xa2\xff\xfe", "payload"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_PAYLOADS)
def test_decode_rejects_with_field_name(payload: bytes, field: str) -> None:
    """Malformed payloads raise BadCommand whose `field` names what is wrong."""
    with pytest.raises(BadCommand) as caught:
        decode(payload)
    assert caught.value.field == field
    assert field in str(caught.value)


BAD_COMMANDS = [
    (Get(key=5), "Get.key"),
    (Put(key="k", value=b"bytes"), "Put.value"),
    (Put(key="k", value=(1, 2)), "Put.value"),
    (Put(key="k", value={1, 2}), "Put.value"),
    (Put(key="k", value=2**64), "Put.value"),
    (LockAcquire(name="l", owner="o", ttl_ms=ttl_ms_min - 1), "LockAcquire.ttl_ms"),
    (LockRefresh(name="l", owner="o", ttl_ms=ttl_ms_max + 1), "LockRefresh.ttl_ms"),
    (DecisionPropose(id="d", value=None), "DecisionPropose.value"),
    (Request(client_id="c", seq=1, op=AdvanceTime(now_ms=1)), "Request.op"),
    (Request(client_id="c", seq=1, op=Noop()), "Request.op"),
    (Request(client_id="", seq=1, op=Get(key="k")), "Request.client_id"),
    ("Get k", "command"),
    (Get, "command"),
]


@pytest.mark.parametrize(("command", "field"), BAD_COMMANDS)
def test_encode_rejects_with_field_name(command: object, field: str) -> None:
    """encode refuses what decode would refuse, so a bad command never reaches the log."""
    with pytest.raises(BadCommand) as caught:
        encode(command)
    assert caught.value.field == field


def test_ttl_bounds_are_inclusive() -> None:
    """TTLs of exactly ttl_ms_min and ttl_ms_max are valid; the bound is enforced at encode."""
    for ttl in (ttl_ms_min, ttl_ms_max):
        validate(LockAcquire(name="l", owner="o", ttl_ms=ttl))


def test_key_limit_counts_utf8_bytes() -> None:
    """Keys are bounded in UTF-8 bytes, not characters: 512 'é' fit, 513 do not."""
    validate(Get(key="k" * key_bytes_max))
    validate(Get(key="é" * (key_bytes_max // 2)))
    for key in ("k" * (key_bytes_max + 1), "é" * (key_bytes_max // 2 + 1)):
        with pytest.raises(BadCommand, match=r"Get\.key"):
            encode(Get(key=key))
        with pytest.raises(BadCommand, match=r"Get\.key"):
            decode(raw(1, key))


def test_value_limit_is_encoded_bytes() -> None:
    """A value may encode to exactly value_bytes_max bytes; one more is refused both ways."""
    fits = "v" * (value_bytes_max - 5)  # str32 header: 5 bytes
    assert len(msgpack.packb(fits)) == value_bytes_max
    assert strict(decode(encode(Put(key="k", value=fits)))) == strict(Put(key="k", value=fits))
    too_big = fits + "v"
    with pytest.raises(BadCommand, match=r"Put\.value"):
        encode(Put(key="k", value=too_big))
    with pytest.raises(BadCommand, match=r"Put\.value"):
        decode(raw(2, "k", too_big))
    with pytest.raises(BadCommand, match=r"Cas\.expected"):
        encode(Cas(key="k", expected=too_big, value=1))
    with pytest.raises(BadCommand, match="payload"):
        decode(b"\x00" * (command_bytes_max + 1))


def test_value_depth_is_bounded() -> None:
    """Nesting beyond value_depth_max is refused (the validator never hits recursion limits)."""
    ok: object = 1
    for _ in range(value_depth_max):
        ok = [ok]
    validate(Put(key="k", value=ok))
    with pytest.raises(BadCommand, match="nested"):
        encode(Put(key="k", value=[ok]))


def test_lone_surrogates_are_bad_commands() -> None:
    """Strings that are not valid UTF-8 cannot be logged: BadCommand, not UnicodeEncodeError."""
    with pytest.raises(BadCommand):
        encode(Put(key="k", value="\ud800"))
    with pytest.raises(BadCommand, match=r"Get\.key"):
        encode(Get(key="\ud800" * 300))


def test_decode_accepts_bytes_like_and_refuses_other_types() -> None:
    """bytearray/memoryview decode like bytes; anything else is a BadCommand on "payload"."""
    payload = encode(Get(key="k"))
    assert decode(bytearray(payload)) == Get(key="k")
    assert decode(memoryview(payload)) == Get(key="k")
    for not_bytes in (None, "payload", 5, [1, "k"]):
        with pytest.raises(BadCommand, match="payload"):
            decode(not_bytes)


@given(st.binary(max_size=200))
@fuzz(2000)
def test_garbage_bytes_raise_bad_command_only(data: bytes) -> None:
    """Whatever bytes arrive, decode returns a command or raises BadCommand, nothing else."""
    try:
        command = decode(data)
    except BadCommand as exc:
        assert "internal validation error" not in str(exc)  # an unforeseen exception
    else:
        assert strict(decode(encode(command))) == strict(command)


# Near-miss documents: right outer shape, random tags and fields, to reach every validator.
near_misses = st.lists(
    st.one_of(
        st.integers(-2, 15),
        json_values,
        st.binary(max_size=3),
        st.lists(st.integers(0, 14) | st.text(max_size=3), max_size=4),
    ),
    min_size=1,
    max_size=5,
)


@given(near_misses)
@fuzz(2000)
def test_near_miss_documents_raise_bad_command_only(document: list[object]) -> None:
    """Structured fuzz: msgpack arrays shaped like commands decode or raise BadCommand only."""
    try:
        command = decode(msgpack.packb(document))
    except BadCommand as exc:
        assert "internal validation error" not in str(exc)  # an unforeseen exception
    else:
        assert strict(decode(encode(command))) == strict(command)


@given(json_values)
@fuzz(200)
def test_json_values_survive_the_log(value: object) -> None:
    """Any JSON value is stored and read back with identical types and key order."""
    assert strict(decode(encode(Put(key="k", value=value)))) == strict(Put(key="k", value=value))
