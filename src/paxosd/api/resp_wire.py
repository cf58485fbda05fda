"""RESP framing without I/O: bytes in, commands out.

`RespScanner` is the RESP front end's reader as a plain object. `feed(data)` takes the next
bytes of a connection's stream, in chunks of any size; `next_command()` returns the next
complete command as its list of arguments, or None until more bytes arrive. It never touches a
socket, a clock or the event loop, so its tests are bytes and expected commands
(tests/api/test_resp_wire.py); `resp.RespProtocol` owns the connection, flow control and the
reply queue.

Theory of operation:

1. **Scan, then parse.** `feed` first walks the RESP framing of the new bytes in Python (`*N`,
   then N times `$L` and L bytes), enforcing the limits, and only then hands the checked bytes
   to the C `hiredis.Reader`, which builds the argument lists and decodes UTF-8. Why not give
   hiredis the raw bytes: it allocates a `*N` array as soon as it reads the header
   (`*2147483647\\r\\n` asks for 16 GiB), accepts nested aggregates, and keeps reading a `$L`
   bulk of any length, so a hostile or broken client could exhaust memory. The scan costs
   about 0.5 µs for a SET: headers of 1-2 digits are read by byte arithmetic.
2. **Inline commands** (`PING\\r\\n`, as telnet, `nc` and redis-benchmark's PING_INLINE send
   them) are split into words with redis-cli's quoting rules (`SET k "a b"`, `'it''s'`
   escapes, `"\\x41"`), converted to RESP arrays and fed to the same reader, so every command
   comes out in arrival order.
3. **Errors.** A framing error ends the stream: the commands before it still come out of
   `next_command`, then it raises `RespProtocolError` (once), and the scanner takes no more
   bytes. Arguments may be any bytes: they come out as text, bytes that are not UTF-8 kept as
   lone surrogates (`errors="surrogateescape"`), which `arg.encode("utf-8",
   "surrogateescape")` turns back into the exact bytes sent.

Limits (any object with these attributes, normally `limits.RespLimits`), units last:
`bulk_bytes_max` (one argument), `command_bytes_max` (all arguments of one command),
`command_args_max` (arguments of one command), `inline_bytes_max` (one inline command line).
"""

from __future__ import annotations

from typing import Final, Protocol

import hiredis

__all__ = [
    "BEGAN",
    "PARTIAL",
    "VIOLATED",
    "Command",
    "RespProtocolError",
    "RespScanner",
    "UnbalancedQuotes",
    "WireLimits",
    "split_inline",
]

Command = list[str]  # a command's arguments, its name first; never empty

# A `*N` / `$L` header line is the type byte, at most 20 digits and CRLF; longer is garbage.
header_bytes_max: Final = 24

# What `RespScanner.feed` returns besides 0 (see there).
PARTIAL: Final = 1
BEGAN: Final = 2
VIOLATED: Final = 4


class WireLimits(Protocol):
    """The limits the scanner enforces (all in `limits.RespLimits`)."""

    @property
    def bulk_bytes_max(self) -> int: ...
    @property
    def command_bytes_max(self) -> int: ...
    @property
    def command_args_max(self) -> int: ...
    @property
    def inline_bytes_max(self) -> int: ...


class RespProtocolError(Exception):
    """The peer broke the framing: answer `reply` (nothing if empty), then close.

    `reason` is for the log; `reply` is a complete RESP error (`-ERR Protocol error: ...`).
    """

    def __init__(self, reply: bytes, reason: str) -> None:
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


class UnbalancedQuotes(ValueError):
    """An inline command line whose quotes do not close (or close inside a word)."""


def _error(text: str) -> bytes:
    # The text may quote what the client sent: control characters (a CR or LF above all)
    # would end the error line early, so they are escaped.
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return b"-ERR Protocol error: " + safe.encode() + b"\r\n"


_ERR_BULK_LENGTH: Final = _error("invalid bulk length")
_ERR_MULTIBULK_LENGTH: Final = _error("invalid multibulk length")
_ERR_TOO_LARGE: Final = _error("command too large")
_ERR_INLINE_TOO_BIG: Final = _error("too big inline request")
_ERR_QUOTES: Final = _error("unbalanced quotes in request")


class RespScanner:
    """One connection's stream of RESP requests. See the module docstring."""

    __slots__ = (
        "_broken",
        "_carry",
        "_ended",
        "_gets",
        "_left",
        "_limits",
        "_need",
        "_reader",
        "_size",
        "_violation",
    )

    def __init__(self, limits: WireLimits) -> None:
        self._limits = limits
        # Arguments as text, any bytes that are not UTF-8 kept as lone surrogates
        # (surrogateescape): commands are text, while keys and values are exact bytes again
        # with arg.encode("utf-8", "surrogateescape") (resp_commands.py). Nothing is refused.
        self._reader = hiredis.Reader(encoding="utf-8", errors="surrogateescape")
        self._gets = self._reader.gets
        # Scan state across chunks: bytes of the current bulk (and its CRLF) still to pass,
        # bulk headers still due in the current command, argument bytes of it so far, and an
        # incomplete header or inline line held back until the rest arrives.
        self._need = 0
        self._left = 0
        self._size = 0
        self._carry = b""
        # The framing error found by `feed`, raised once the commands before it are out.
        self._violation: RespProtocolError | None = None
        self._broken = False  # a framing error was found (raised or still to be raised)
        self._ended = False  # the peer sent its last byte

    @property
    def violated(self) -> bool:
        """A framing error was found; reading more of the stream is pointless."""
        return self._broken

    @property
    def partial(self) -> bool:
        """Bytes of a command that is not complete yet are held (a header, an argument, a line)."""
        return bool(self._carry or self._need or self._left)

    def end_of_input(self) -> None:
        """The peer sent its last byte: an incomplete command can never complete now."""
        self._carry = b""
        self._need = self._left = 0
        self._ended = True

    def next_command(self) -> Command | None:
        """The next complete command, or None until `feed` brings more.

        Raises RespProtocolError (once) where the stream broke the framing.
        """
        try:
            args = self._gets()
        except hiredis.HiredisError as exc:
            if self._broken and self._violation is None:
                return None  # the error was raised: the stream is over
            # The scan admits only well-framed input, but hiredis is stricter about digits
            # ("$ 3"); its verdict ends the stream like any framing error.
            self._violation = None
            self._broken = True
            raise RespProtocolError(_error(str(exc)), f"hiredis: {exc}") from None
        if args:
            return args
        if args is False:
            violation = self._violation
            if violation is not None:
                self._violation = None
                raise violation
            return None
        return self.next_command()  # `*0` is an empty command: skipped, as Redis does

    def feed(self, data: bytes) -> int:
        """Take the next bytes of the stream (ignored once it broke the framing).

        Returns 0 in the common case, the bytes ending where a command ends; otherwise flags:
        PARTIAL (an incomplete command is held), with BEGAN if a new command began in these
        bytes (so the one held is new: what a deadline on slow commands needs to know), or
        VIOLATED (a framing error was found).
        """
        if self._broken or self._ended:
            return 0
        reader = self._reader
        n = len(data)
        need = self._need
        if need >= n:  # all of it is the middle of one long argument
            need -= n
            self._need = need
            reader.feed(data)
            return PARTIAL if need or self._left else 0
        if self._carry:
            data = self._carry + data
            n = len(data)
            self._carry = b""
        limits = self._limits
        find = data.find
        pos = need  # scan position: the next header
        fed = 0  # data[:fed] has been fed to the reader (or converted, for inline lines)
        left = self._left
        size = self._size
        violation: RespProtocolError | None = None
        incomplete = False
        began = False
        while pos < n:
            if left:
                if data[pos] != 36:  # "$"
                    got = chr(data[pos])
                    violation = RespProtocolError(
                        _error(f"expected '$', got '{got}'"), f"expected '$', got {got!r}"
                    )
                    break
                # Lengths under 100 (most keys and small values) by byte arithmetic, which
                # halves the cost of a scan. A non-digit there gives a wrong length, but hiredis
                # rejects that same header before it reads anything after it, so the stream
                # still ends at the error.
                if pos + 3 < n and data[pos + 2] == 13:
                    length = data[pos + 1] - 48
                    following = pos + 6 + length
                elif pos + 4 < n and data[pos + 3] == 13:
                    length = data[pos + 1] * 10 + data[pos + 2] - 528
                    following = pos + 7 + length
                else:
                    header = _header(data, pos, n)
                    if header is None:
                        incomplete = True
                        break
                    length, end = header
                    following = end + 4 + length
                if length < 0:
                    violation = RespProtocolError(_ERR_BULK_LENGTH, "invalid bulk length")
                    break
                if length > limits.bulk_bytes_max:
                    # A valid length, only larger than anything the node could store.
                    text = f"bulk of {length} bytes is too large (at most {limits.bulk_bytes_max})"
                    violation = RespProtocolError(_error(text), text)
                    break
                size += length
                if size > limits.command_bytes_max:
                    violation = RespProtocolError(_ERR_TOO_LARGE, "command too large")
                    break
                left -= 1
                pos = following  # may pass n: the argument continues in the next chunk
                continue
            if data[pos] == 42:  # "*"
                if pos + 3 < n and data[pos + 2] == 13:
                    count = data[pos + 1] - 48
                    following = pos + 4
                else:
                    header = _header(data, pos, n)
                    if header is None:
                        incomplete = True
                        break
                    count, end = header
                    following = end + 2
                if count < 0 or count > limits.command_args_max:
                    violation = RespProtocolError(_ERR_MULTIBULK_LENGTH, "invalid multibulk length")
                    break
                left = count
                size = 0
                pos = following
                began = True
                continue
            # An inline command: one line of words, converted to RESP so it takes its turn in
            # the reader like any other command.
            end = find(b"\n", pos, pos + limits.inline_bytes_max)
            if end < 0:
                if n - pos < limits.inline_bytes_max:
                    incomplete = True
                else:
                    violation = RespProtocolError(_ERR_INLINE_TOO_BIG, "too big inline request")
                break
            line = data[pos:end]
            try:
                words = split_inline(line)
            except UnbalancedQuotes:
                violation = RespProtocolError(_ERR_QUOTES, "unbalanced quotes in an inline command")
                break
            if words and words[0].upper() in (b"POST", b"HOST:"):
                # Someone speaks HTTP to this port (perhaps a browser tricked into it): close
                # without running anything more and without an answer, as Redis does.
                violation = RespProtocolError(b"", "an HTTP request on the RESP port")
                break
            if fed < pos:
                reader.feed(data, fed, pos - fed)
            fed = pos = end + 1
            began = True
            if words:
                body = b"".join(b"$%d\r\n%b\r\n" % (len(word), word) for word in words)
                reader.feed(b"*%d\r\n%b" % (len(words), body))
        if pos > n:
            need = pos - n
            pos = n
        else:
            need = 0
        self._need = need
        self._left = left
        self._size = size
        if fed < pos:
            reader.feed(data, fed, pos - fed)
        if incomplete:
            self._carry = data[pos:]  # a header or inline line that ends in the next chunk
        elif violation is not None:
            # Everything before the error comes out of next_command; nothing after it is read.
            self._violation = violation
            self._broken = True
            self._left = self._need = 0
            return VIOLATED
        if incomplete or need or left:
            return PARTIAL | BEGAN if began else PARTIAL
        return 0


def _header(data: bytes, pos: int, n: int) -> tuple[int, int] | None:
    """The number in the `*N` / `$L` header line at `pos` and where its CRLF starts: None if
    the line is not complete yet; the number is -1 if it is not one (or too long to be one)."""
    end = data.find(b"\r\n", pos + 1, pos + header_bytes_max)
    if end < 0:
        return None if n - pos < header_bytes_max else (-1, pos)
    try:
        value = int(data[pos + 1 : end])
    except ValueError:
        return -1, end
    return (value if value >= 0 else -1), end


# Inline command lines: what separates words, and the escapes inside double quotes. The rules
# are redis-cli's (sdssplitargs in Redis), so a line typed for Redis means the same here.
_SPACE: Final = frozenset(b" \t\n\r\v\f")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_DOUBLE: Final = 34  # "
_SINGLE: Final = 39  # '
_BACKSLASH: Final = 92


def split_inline(line: bytes) -> list[bytes]:
    """The words of one inline command line, with redis-cli's quoting.

    Words are separated by whitespace. In double quotes, `\\n \\r \\t \\b \\a` and `\\xHH` are
    escapes and a backslash takes the next byte literally; in single quotes only `\\'` is an
    escape. A closing quote must end its word. Raises UnbalancedQuotes otherwise.
    """
    if _DOUBLE not in line and _SINGLE not in line:
        return line.split()  # the common case, in C; the same as _split_quoted without quotes
    return _split_quoted(line)


def _split_quoted(line: bytes) -> list[bytes]:
    words: list[bytes] = []
    i = 0
    n = len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        word = bytearray()
        quote = 0  # the open quote, or 0
        while True:
            if i >= n:
                if quote:
                    raise UnbalancedQuotes("a quote is not closed")
                break
            byte = line[i]
            if quote == _DOUBLE:
                if (
                    byte == _BACKSLASH
                    and i + 3 < n
                    and line[i + 1] == 120  # x
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if byte == _BACKSLASH and i + 1 < n:
                    escaped = line[i + 1]
                    word.append(_ESCAPES.get(escaped, escaped))
                    i += 2
                    continue
            elif quote == _SINGLE and byte == _BACKSLASH and i + 1 < n and line[i + 1] == _SINGLE:
                word.append(_SINGLE)
                i += 2
                continue
            if quote:
                i += 1
                if byte != quote:
                    word.append(byte)
                    continue
                if i < n and line[i] not in _SPACE:
                    raise UnbalancedQuotes("a closing quote must end its word")
                break
            if byte in _SPACE:
                break
            if byte in (_DOUBLE, _SINGLE):
                quote = byte
            else:
                word.append(byte)
            i += 1
        words.append(bytes(word))
