"""The RESP scanner with bytes alone: streams in, commands and errors out (no sockets)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxosd.api.limits import RespLimits
from paxosd.api.resp_wire import (
    BEGAN,
    PARTIAL,
    VIOLATED,
    Command,
    RespProtocolError,
    RespScanner,
    UnbalancedQuotes,
    _split_quoted,
    split_inline,
)


def command(*words: bytes | str) -> bytes:
    """One command in RESP framing."""
    raw = [word.encode() if isinstance(word, str) else word for word in words]
    return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in raw)


def scan(
    chunks: list[bytes], limits: RespLimits | None = None
) -> list[Command | str | RespProtocolError]:
    """Feed `chunks` one by one, taking commands after each."""
    scanner = RespScanner(limits or RespLimits())
    out: list[Command | str | RespProtocolError] = []
    for chunk in chunks:
        scanner.feed(chunk)
        while True:
            try:
                args = scanner.next_command()
            except RespProtocolError as exc:
                out.append(exc)
                continue
            if args is None:
                break
            out.append(args)
    return out


def protocol_error(stream: bytes, limits: RespLimits | None = None) -> bytes:
    """The error reply that ends `stream` (after any commands before it)."""
    got = scan([stream], limits)
    assert isinstance(got[-1], RespProtocolError), got
    return got[-1].reply


# ---------------------------------------------------------------------------------------------
# Commands


STREAM = (
    command("SET", "a", "x" * 150)
    + command("SET", "b" * 12, "y")
    + b"GET a\r\n"
    + command("MGET", "a", "b" * 12, "c")
    + command("SET", "u", "ü" * 70)
    + command("SET", "bad", b"\xff")
    + b"\r\n"
    + command("GET", "u")
    + b"SET q \"a b\" 'c'\r\n"
    + command("LOCK", "l", "me", "1000")
    + b"*0\r\n"
    + command("PING")
)
EXPECTED: list[Command | str | RespProtocolError] = [
    ["SET", "a", "x" * 150],
    ["SET", "b" * 12, "y"],
    ["GET", "a"],
    ["MGET", "a", "b" * 12, "c"],
    ["SET", "u", "ü" * 70],
    ["SET", "bad", "\udcff"],  # any bytes: b"\xff" as a surrogate, exact again when encoded
    ["GET", "u"],
    ["SET", "q", "a b", "c"],
    ["LOCK", "l", "me", "1000"],
    ["PING"],  # "\r\n" and *0 are no commands
]


def test_a_stream_gives_its_commands_in_order() -> None:
    assert scan([STREAM]) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_commands(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    assert scan([STREAM[a:b] for a, b in itertools.pairwise(points)]) == EXPECTED


def test_byte_by_byte() -> None:
    assert scan([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_feed_says_where_a_command_stands() -> None:
    scanner = RespScanner(RespLimits())
    assert not scanner.partial
    assert scanner.feed(b"*2\r\n$3\r\nGET") == PARTIAL | BEGAN  # a new command began
    assert scanner.partial and scanner.next_command() is None
    assert scanner.feed(b"\r\n$1\r") == PARTIAL  # the same command goes on
    assert scanner.feed(b"\nk") == PARTIAL  # inside the last argument
    assert scanner.feed(b"\r\n") == 0  # it ends where a command ends: the common case
    assert not scanner.partial
    assert scanner.next_command() == ["GET", "k"]
    assert scanner.feed(command("PING") * 2) == 0
    assert scanner.feed(b"PING\r\nPI") == PARTIAL | BEGAN  # inline lines are commands too
    assert scanner.next_command() == ["PING"] and scanner.next_command() == ["PING"]
    assert scanner.next_command() == ["PING"] and scanner.next_command() is None
    scanner.end_of_input()  # the peer is gone: the half line can never complete
    assert not scanner.partial and scanner.next_command() is None
    assert scanner.feed(b"NG\r\n") == 0 and scanner.next_command() is None
    broken = RespScanner(RespLimits())
    assert broken.feed(command("PING") + b"*-1\r\n") == VIOLATED and broken.violated


def test_a_long_argument_in_many_chunks() -> None:
    value = b"v" * 100_000
    data = command("SET", "k", value)
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    assert scan(chunks) == [["SET", "k", value.decode()]]


# ---------------------------------------------------------------------------------------------
# Inline commands: redis-cli's quoting


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"SET k v", [b"SET", b"k", b"v"]),
        (b"  get\t a  ", [b"get", b"a"]),
        (b'SET k "a b"', [b"SET", b"k", b"a b"]),
        (b'SET k ""', [b"SET", b"k", b""]),
        (b"SET k 'it\\'s'", [b"SET", b"k", b"it's"]),
        (b"SET k 'a\\nb'", [b"SET", b"k", b"a\\nb"]),  # no escapes in single quotes but \'
        (b'SET k "a\\nb\\t\\"c\\\\"', [b"SET", b"k", b'a\nb\t"c\\']),
        (b'SET k "\\x41\\x4a\\xzz"', [b"SET", b"k", b"AJxzz"]),  # \xzz is no hex escape
        (b'SET k"ey" v', [b"SET", b"key", b"v"]),  # a quote may start inside a word
        (b'SET k "a b"\r', [b"SET", b"k", b"a b"]),
    ],
)
def test_inline_quoting(line: bytes, words: list[bytes]) -> None:
    assert split_inline(line) == words


@pytest.mark.parametrize("line", [b'SET k "a b', b"SET k 'a", b'SET k "a"b', b"SET k 'a'b", b'"\\'])
def test_unbalanced_quotes(line: bytes) -> None:
    with pytest.raises(UnbalancedQuotes):
        split_inline(line)
    reply = protocol_error(b"PING\r\n" + line + b"\r\n")
    assert reply == b"-ERR Protocol error: unbalanced quotes in request\r\n"


_SPACE_FREE = st.binary(max_size=40).filter(lambda b: b'"' not in b and b"'" not in b)


@settings(max_examples=500, deadline=None)
@given(line=_SPACE_FREE)
def test_the_quoting_parser_splits_like_split_without_quotes(line: bytes) -> None:
    assert _split_quoted(line) == line.split()


def _redis_repr(word: bytes) -> bytes:
    """A word quoted as redis-cli prints it (sdscatrepr): what its users paste back."""
    escapes = {0x5C: b"\\\\", 0x22: b'\\"', 10: b"\\n", 13: b"\\r", 9: b"\\t", 7: b"\\a", 8: b"\\b"}
    out = bytearray(b'"')
    for byte in word:
        if byte in escapes:
            out += escapes[byte]
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    return bytes(out + b'"')


@settings(max_examples=500, deadline=None)
@given(words=st.lists(st.binary(max_size=12), min_size=1, max_size=5))
def test_quoted_words_round_trip(words: list[bytes]) -> None:
    assert split_inline(b" ".join(_redis_repr(word) for word in words)) == words


# ---------------------------------------------------------------------------------------------
# Framing errors and limits


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"*1\r\n$2147483647\r\n", b"-ERR Protocol error: bulk of 2147483647 bytes is too large"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999999\r\n", b"is too large"),
        (b"*2147483647\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*4294967296\r\n$3\r\nGET\r\n", b"invalid multibulk length"),
        (b"*" + b"9" * 40 + b"\r\n", b"invalid multibulk length"),
        (b"*1\r\n$" + b"9" * 40, b"invalid bulk length"),
        (b"*1\r\n$-1\r\n", b"invalid bulk length"),
        (b"*-1\r\n", b"invalid multibulk length"),
        (b"*x\r\n", b"Bad multi-bulk length"),  # hiredis's own verdict on the digit
        (b"*2\r\n:1\r\n", b"expected '$', got ':'"),
        (b"*1\r\n*1\r\n$4\r\nPING\r\n", b"expected '$', got '*'"),
        (b"*1\r\n$ 4\r\nPING\r\n", b"-ERR Protocol error: "),  # hiredis's own verdict
    ],
)
def test_bad_headers_end_the_stream_after_the_commands_before(
    stream: bytes, expected: bytes
) -> None:
    scanner = RespScanner(RespLimits())
    # No body follows: the verdict must come from the header alone.
    scanner.feed(command("PING") + stream)
    assert scanner.next_command() == ["PING"]
    with pytest.raises(RespProtocolError) as raised:
        scanner.next_command()
    assert raised.value.reply.startswith(b"-ERR Protocol error: ")
    assert expected in raised.value.reply
    assert scanner.violated
    scanner.feed(command("PING"))  # nothing after the error is taken
    assert scanner.next_command() is None


def test_limits() -> None:
    limits = RespLimits(
        bulk_bytes_max=1000, command_bytes_max=1500, command_args_max=4, inline_bytes_max=64
    )
    assert scan([command("SET", "k", "v" * 1000)], limits) == [["SET", "k", "v" * 1000]]
    too_big = protocol_error(command("SET", "k", "v" * 1001), limits)
    assert too_big == b"-ERR Protocol error: bulk of 1001 bytes is too large (at most 1000)\r\n"
    too_many = protocol_error(command("MSET", "a", "v" * 800, "b", "v" * 800), limits)
    assert too_many == b"-ERR Protocol error: invalid multibulk length\r\n"
    too_long = protocol_error(command("SET", "k" * 600, "v" * 1000), limits)
    assert too_long == b"-ERR Protocol error: command too large\r\n"
    inline = protocol_error(b"PING " + b"x" * 100, limits)
    assert inline == b"-ERR Protocol error: too big inline request\r\n"
    assert scan([b"PING " + b"x" * 50], limits) == []  # not over yet: it waits for the line end


def test_http_on_the_resp_port_ends_the_stream_without_a_reply() -> None:
    got = scan([command("PING") + b"POST / HTTP/1.1\r\nHost: example\r\n\r\nSET a b\r\n"])
    assert got[0] == ["PING"]
    assert isinstance(got[1], RespProtocolError) and got[1].reply == b""
    assert len(got) == 2
    # A GET request line is an (odd) GET command; the Host: line that follows ends it all.
    got = scan([b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"])
    assert got[0] == ["GET", "/", "HTTP/1.1"] and isinstance(got[1], RespProtocolError)


@settings(max_examples=300, deadline=None)
@given(
    garbage=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from([b"*", b"$", b"\r\n", b"3", b"-1", b"99999999999", b"GET", b"\xff"]),
            max_size=30,
        ).map(b"".join),
    ),
    cut=st.integers(min_value=0, max_value=300),
)
def test_garbage_gives_commands_or_one_error_and_never_raises_anything_else(
    garbage: bytes, cut: int
) -> None:
    got = scan([garbage[:cut], garbage[cut:]])
    errors = [item for item in got if isinstance(item, RespProtocolError)]
    assert len(errors) <= 1
    if errors:
        assert got[-1] is errors[0]  # nothing comes after the error
        assert errors[0].reply == b"" or errors[0].reply.startswith(b"-ERR Protocol error: ")
