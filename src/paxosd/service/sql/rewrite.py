"""What the node that takes a write rewrites to constants before proposing it.

Theory of operation: a statement that calls `random()` or asks for the current time would
give each replica a different answer. The node that receives the request (before anything
reaches the log) replaces each such call with the value it draws or reads once, so the log
holds a statement every replica runs alike:

* `random()`                        -> an integer literal (a signed 64-bit draw);
* `randomblob(N)` with a literal N  -> a blob literal `X'...'` of N bytes;
* `CURRENT_TIMESTAMP` / `CURRENT_DATE` / `CURRENT_TIME` -> a text literal in UTC;
* `'now'` as an argument of `date`, `time`, `datetime`, `julianday`, `unixepoch`, `strftime`,
  and those functions called without a time (`date()`), -> the time as a text literal,
  `'YYYY-MM-DD HH:MM:SS.SSS'` in UTC (so `julianday('now')` keeps its milliseconds).

The scan is a tokenizer, not a parser: it knows SQL's string literals, quoted identifiers
and comments, so `'random()'` in a string or `"now"` as a column name is left alone. CREATE
statements are not rewritten (a trigger's body or a column's DEFAULT is run later, each time,
so freezing one value into it would change its meaning); what they call is refused when it
runs (policy.py). Anything the scan cannot rewrite (`randomblob(?)`) reaches the replicas as
written and is refused there, on every replica alike: the rewrite is a convenience, the policy
is the guarantee.

Pure: the caller passes the time and the random bytes (`Sources`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# randomblob(N): the largest N rewritten (a bigger one is refused on the replicas).
randomblob_bytes_max: Final = 64 * 1024

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<quoted>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)
  | (?P<blob>[xX]'[^']*'?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_DATE_FUNCTIONS: Final = frozenset(
    {"date", "time", "datetime", "julianday", "unixepoch", "strftime"}
)
_CURRENT: Final = {
    "current_timestamp": "%Y-%m-%d %H:%M:%S",
    "current_date": "%Y-%m-%d",
    "current_time": "%H:%M:%S",
}


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the rewritten values come from: the time (ms since the epoch, UTC) and a source
    of random bytes (`random_bytes(n)`)."""

    now_ms: int
    random_bytes: Callable[[int], bytes]


@dataclass(slots=True)
class _Token:
    kind: str
    text: str


def _tokens(sql: str) -> list[_Token]:
    return [_Token(match.lastgroup or "other", match.group()) for match in _TOKEN.finditer(sql)]


def rewrite(sql: str, sources: Sources) -> str:
    """`sql` with its calls of randomness and the clock replaced by constants (see above);
    unchanged if it has none or is a CREATE statement."""
    lowered = sql.lower()
    if not any(
        word in lowered for word in ("random", "current_", "now", "date", "time", "julianday")
    ):
        return sql  # the common case: nothing to look for
    tokens = _tokens(sql)
    significant = [i for i, token in enumerate(tokens) if token.kind not in ("space", "comment")]
    if significant and tokens[significant[0]].text.lower() == "create":
        return sql
    moment = datetime.datetime.fromtimestamp(sources.now_ms / 1000, tz=datetime.UTC)
    stamp = "'" + moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}'"
    out = [token.text for token in tokens]

    def following(position: int, offset: int) -> _Token | None:
        index = position + offset
        return tokens[significant[index]] if index < len(significant) else None

    # Date functions whose argument list is open: the paren depth inside them.
    for position, index in enumerate(significant):
        token = tokens[index]
        if token.kind != "word":
            continue
        word = token.text.lower()
        after = following(position, 1)
        opens = after is not None and after.text == "("
        if word == "random" and opens:
            closing = following(position, 2)
            if closing is not None and closing.text == ")":
                value = int.from_bytes(sources.random_bytes(8), "big", signed=True)
                _replace(
                    out,
                    index,
                    significant[position + 2],
                    str(value) if value >= 0 else f"({value})",
                )
        elif word == "randomblob" and opens:
            size = following(position, 2)
            closing = following(position, 3)
            if (
                size is not None
                and size.kind == "number"
                and size.text.isdigit()
                and closing is not None
                and closing.text == ")"
            ):
                count = max(int(size.text), 1)  # SQLite gives one byte for N < 1
                if count <= randomblob_bytes_max:
                    blob = "X'" + sources.random_bytes(count).hex().upper() + "'"
                    _replace(out, index, significant[position + 3], blob)
        elif word in _CURRENT and not opens:
            out[index] = "'" + moment.strftime(_CURRENT[word]) + "'"
        elif word in _DATE_FUNCTIONS and opens:
            _rewrite_date_call(tokens, significant, position + 1, out, stamp)
    return "".join(out)


def _replace(out: list[str], first: int, last: int, text: str) -> None:
    """Tokens first..last (a whole call, spaces and comments inside it too) become `text`."""
    out[first] = text
    for index in range(first + 1, last + 1):
        out[index] = ""


def _rewrite_date_call(
    tokens: list[_Token], significant: list[int], open_at: int, out: list[str], stamp: str
) -> None:
    """In the call whose "(" is significant token `open_at`: its top-level 'now' arguments
    become `stamp`; a call without a time gets `stamp` as its time (`date()`, or `strftime`
    with its format alone)."""
    depth = 0
    commas = 0
    empty = True
    name = tokens[significant[open_at - 1]].text.lower()
    for position in range(open_at, len(significant)):
        index = significant[position]
        text = tokens[index].text
        if text == "(":
            depth += 1
            if depth == 1:
                continue
        elif text == ")":
            depth -= 1
            if depth == 0:
                if empty:
                    out[significant[open_at]] = "(" + stamp
                elif name == "strftime" and commas == 0:
                    out[index] = ", " + stamp + ")"
                return
        if depth == 1:
            empty = False
            if text == ",":
                commas += 1
            elif tokens[index].kind == "string" and text.lower() == "'now'":
                out[index] = stamp
