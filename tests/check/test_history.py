"""Parsers and invoke/completion pairing."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from paxosd.check.history import (
    Event,
    Format,
    HistoryError,
    OpType,
    as_mapping,
    build_history,
    detect_format,
    dump_jsonl,
    dump_porcupine,
    load_history,
    parse_edn,
    parse_history,
    parse_jepsen,
    parse_jsonl,
    parse_porcupine,
    read_edn,
)

from ._support import vector_cases

JEPSEN_LOG = """\
INFO  jepsen.core - Worker 0 starting
INFO  jepsen.util - 0\t:invoke\t:read\tnil
INFO  jepsen.util - 1   :invoke :cas    [1 4]
INFO  jepsen.util - :nemesis\t:info\t:start\tnil

INFO  jepsen.util - 0\t:ok\t:read\t3
INFO  jepsen.util - 2  :invoke :write  7
INFO  jepsen.util - 1\t:fail\t:cas\t[1 4]
INFO  jepsen.util - 2\t:info\t:write\t:timed-out
WARN  jepsen.core - something unrelated: happened
INFO  jepsen.util - 3\t:invoke\t:read\tnil
INFO  jepsen.util - 4\t:invoke\t:cas\t[7 9]
INFO  jepsen.util - 4\t:ok\t:cas\t[7 9]
"""


def test_jepsen_every_line_shape() -> None:
    h = parse_jepsen(JEPSEN_LOG)
    assert h.source_format == "jepsen"
    assert h.failed == 1  # the cas [1 4] certainly did not happen: dropped
    read, write, pending_read, cas = h.operations
    assert (read.f, read.input, read.output, read.known) == ("read", None, 3, True)
    assert (read.invoke_line, read.complete_line) == (2, 6)
    assert read.call < read.ret
    assert (write.f, write.input, write.known, write.ret) == ("write", 7, False, math.inf)
    assert (write.invoke_line, write.complete_line) == (7, 9)  # 9: the :info line
    assert (pending_read.known, pending_read.complete_line) == (False, None)  # log ended
    assert (cas.input, cas.output, cas.known) == ((7, 9), (7, 9), True)
    assert [o.index for o in h.operations] == [0, 1, 2, 3]
    assert all(o.key is None for o in h.operations)


def test_jepsen_bad_value_names_the_line() -> None:
    with pytest.raises(HistoryError, match=r"^line 2: .*missing"):
        parse_jepsen(
            "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t[1 2\n"
        )


def test_edn_maps() -> None:
    text = (
        '{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}\n'
        "{:process :nemesis, :type :info, :f :start, :value nil}\n"
        '{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}\n'
        '{:process 1, :type :invoke, :f :get, :key "0", :value nil}\n'
        '{:process 1, :type :ok, :f :get, :key "0", :value "x 0 0 y"}\n'
    )
    h = parse_edn(text)
    assert [(o.f, o.key, o.input, o.output) for o in h.operations] == [
        ("append", "0", "x 0 0 y", "x 0 0 y"),
        ("get", "0", None, "x 0 0 y"),
    ]
    assert h.keys() == ["0"]


def test_edn_uses_time_when_every_event_has_it() -> None:
    text = (
        "{:process 0, :type :invoke, :f :read, :value nil, :time 100}\n"
        "{:process 0, :type :ok, :f :read, :value 3, :time 250}\n"
    )
    (read,) = parse_edn(text).operations
    assert (read.call, read.ret) == (100.0, 250.0)


def test_edn_reader_values() -> None:
    assert read_edn('[1 -2 3.5 "a\\"b" :kw nil true #{1} (4 5) {:a 1}]') == (
        1,
        -2,
        3.5,
        'a"b',
        ":kw",
        None,
        True,
        frozenset({1}),
        (4, 5),
        ((":a", 1),),
    )
    assert as_mapping(read_edn("{:token 7}")) == {"token": 7}
    with pytest.raises(HistoryError, match="line 9: unterminated string"):
        read_edn('"abc', line=9)


def test_edn_line_that_is_not_a_map() -> None:
    with pytest.raises(HistoryError, match="line 1: expected an EDN map"):
        parse_edn("[1 2 3]\n")


def test_jsonl_format() -> None:
    lines = [
        {
            "process": "c1",
            "type": "invoke",
            "f": "cas",
            "key": "k",
            "value": [None, 1],
            "time": 0.5,
        },
        {"process": "c2", "type": "invoke", "f": "get", "key": "k", "time": 0.75},
        {
            "process": "c1",
            "type": "ok",
            "f": "cas",
            "key": "k",
            "value": [None, 1],
            "time": 1.0,
            "node": "n2",
        },
        {"process": "c2", "type": "info", "f": "get", "key": "k", "time": 2.0},
    ]
    h = parse_jsonl("\n".join(json.dumps(x) for x in lines))
    cas, get = h.operations
    assert (cas.input, cas.call, cas.ret, cas.node, cas.process) == (
        (None, 1),
        0.5,
        1.0,
        "n2",
        "c1",
    )
    assert (get.known, get.call, get.ret) == (False, 0.75, math.inf)


INVOKE_GET = '{"process": 1, "type": "invoke", "f": "get"}\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (INVOKE_GET + "not json\n", r"^line 2: invalid JSON"),
        ('{"process": 1, "type": "begin", "f": "get"}\n', r"^line 1: type must be"),
        ('{"process": 1, "f": "get"}\n', r"^line 1: missing 'type'"),
        ("[1]\n", r"^line 1: expected a JSON object"),
        (
            '{"process": 1, "type": "ok", "f": "get"}\n',
            r"^line 1: ok for process 1 with no pending",
        ),
        (
            INVOKE_GET + INVOKE_GET,
            r"^line 2: process 1 invokes again while its get from line 1",
        ),
        (
            INVOKE_GET + '{"process": 1, "type": "ok", "f": "put"}\n',
            r"^line 2: completion is put",
        ),
        (
            '{"process": 1, "type": "invoke", "f": "get", "time": 1}\n'
            '{"process": 1, "type": "ok", "f": "get"}\n',
            r"^line 2: 'time' missing",
        ),
        (
            '{"process": 1, "type": "invoke", "f": "get", "time": 5}\n'
            '{"process": 1, "type": "ok", "f": "get", "time": 4}\n',
            r"^line 2: completes at 4.0, before its invoke",
        ),
    ],
)
def test_jsonl_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        parse_jsonl(text)


def test_dump_and_parse_round_trip() -> None:
    events = [
        Event("a", OpType.INVOKE, "put", "x", 1, 0.0),
        Event("b", OpType.INVOKE, "cas", "x", (1, 2), 0.1),
        Event("a", OpType.OK, "put", "x", 1, 0.2, "n1"),
        Event("b", OpType.FAIL, "cas", "x", (1, 2), 0.3),
    ]
    text = dump_jsonl(events)
    assert parse_jsonl(text) == build_history(
        [
            Event(e.process, e.type, e.f, e.key, e.value, e.time, e.node, i + 1)
            for i, e in enumerate(events)
        ],
        "jsonl",
    )
    (put,) = parse_jsonl(text).operations
    assert put.node == "n1"


@pytest.mark.parametrize(
    ("first", "fmt"),
    [
        ('{"process": 0, "type": "invoke"}', Format.JSONL),
        ("{:process 0, :type :invoke}", Format.EDN),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil", Format.JEPSEN),
        ("3 :invoke :read nil", Format.JEPSEN),
    ],
)
def test_detect_format(first: str, fmt: Format) -> None:
    assert detect_format(f"\n\n{first}\n") is fmt


def test_detect_format_refuses_garbage_and_empty() -> None:
    with pytest.raises(HistoryError, match="line 2: cannot tell the format"):
        detect_format("\nhello world\n")
    with pytest.raises(HistoryError, match="empty"):
        parse_history("  \n")


def test_load_history_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="cannot read the file"):
        load_history(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(("path", "expected"), vector_cases("jepsen-etcd"))
def test_every_jepsen_vector_parses(path: Path, expected: bool) -> None:
    h = load_history(path)
    assert h.source_format == "jepsen"
    assert h.operations
    assert {o.f for o in h.operations} <= {"read", "write", "cas"}
    text_ops = sum(1 for line in path.read_text().splitlines() if ":invoke" in line)
    assert len(h.operations) + h.failed == text_ops  # every invoke is accounted for


@pytest.mark.parametrize(("path", "expected"), vector_cases("kv"))
def test_every_kv_vector_parses(path: Path, expected: bool) -> None:
    h = load_history(path)
    assert h.source_format == "edn"
    assert {o.f for o in h.operations} <= {"get", "put", "append"}
    assert len(h.keys()) > 1


# ---------------------------------------------------------------------------- porcupine

PORCUPINE = [
    {"ClientId": 0, "Input": {"Op": "put", "Key": "x", "Value": 1}, "Call": 0,
     "Output": {"Value": None}, "Return": 10},
    {"ClientId": 1, "Input": {"Op": "get", "Key": "x", "Value": None}, "Call": 5,
     "Output": {"Value": 1}, "Return": 12},
    {"ClientId": 2, "Input": {"Op": "put", "Key": "x", "Value": 2}, "Call": 11,
     "Output": None, "Return": None},
]  # fmt: skip


def test_porcupine_array_and_lines() -> None:
    for text in (json.dumps(PORCUPINE), "\n".join(json.dumps(o) for o in PORCUPINE)):
        h = parse_history(text)
        assert h.source_format == "porcupine"
        put, get, lost = h.operations
        assert (put.f, put.key, put.input, put.call, put.ret) == ("put", "x", 1, 0.0, 10.0)
        assert (get.f, get.output, get.process) == ("get", 1, 1)
        assert (lost.known, lost.ret) == (False, math.inf)


def test_porcupine_codes_of_its_own_test_models() -> None:
    kv = [{"ClientId": 0, "Input": {"op": 2, "key": "k", "value": "a"}, "Call": 1,
           "Output": {"value": ""}, "Return": 2}]  # fmt: skip
    (append,) = parse_porcupine(json.dumps(kv)).operations
    assert (append.f, append.input) == ("append", "a")
    register = [{"ClientId": 0, "Input": {"Op": True, "Value": 0}, "Call": 1,
                 "Output": 3, "Return": 2}]  # fmt: skip
    (read,) = parse_porcupine(json.dumps(register)).operations
    assert (read.f, read.output) == ("read", 3)


def test_porcupine_round_trip() -> None:
    h = parse_jsonl(
        '{"process": "a", "type": "invoke", "f": "put", "key": "x", "value": 1, "time": 0.5}\n'
        '{"process": "b", "type": "invoke", "f": "get", "key": "x", "time": 0.75}\n'
        '{"process": "a", "type": "ok", "f": "put", "key": "x", "value": 1, "time": 1.0}\n'
        '{"process": "b", "type": "info", "f": "get", "key": "x", "time": 2.0}\n'
    )
    again = parse_porcupine(dump_porcupine(h))
    assert [(o.f, o.key, o.input, o.known) for o in again.operations] == [
        (o.f, o.key, o.input, o.known) for o in h.operations
    ]
    assert again.operations[0].call == 500_000_000  # nanoseconds, as porcupine counts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"ClientId": 0, "Call": 1}]', r"^line 1: operation 1 has no Input"),
        (
            '{"ClientId": 0, "Input": {"Op": "get"}, "Call": 1, "Return": 2, "Output": 1}\n'
            '{"ClientId": 0, "Input": 5, "Call": 3}\n',
            r"^line 2: Input must be an object",
        ),
        ('[{"ClientId": 0, "Input": {}, "Call": 1}]', r"Input needs an Op"),
        ('[{"ClientId": 0, "Input": {"Op": 7}, "Call": 1}]', r"unknown Op code 7"),
        ('[{"ClientId": 0, "Input": {"Op": "get"}, "Call": "soon"}]', r"Call must be a number"),
        (
            '[{"ClientId": 0, "Input": {"Op": "get"}, "Call": 5, "Return": 1, "Output": 1}]',
            r"Return 1 is before Call 5",
        ),
        ('[{"ClientId": 0,\n "Input": }]', r"^line 2: invalid JSON"),
    ],
)
def test_porcupine_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        parse_porcupine(text)


def test_gzip_histories(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"process": 0, "type": "invoke", "f": "get", "key": "k"}\n'))
    assert load_history(path).operations[0].f == "get"
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(HistoryError, match="cannot read the file"):
        load_history(broken)


def test_edn_errors_name_the_line() -> None:
    text = '{:process 0, :type :invoke, :f :get, :key "0"}\n{:process 0, :type :ok :f}\n'
    with pytest.raises(HistoryError, match=r"^line 2: map with an odd number of forms"):
        parse_edn(text)
