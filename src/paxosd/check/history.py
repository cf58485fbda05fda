"""Histories of client operations, and parsers for the four formats we read.

Theory of operation
-------------------
A history is what clients saw: each operation was *invoked* at some moment and later
*completed* with one of three outcomes, following Jepsen's vocabulary:

- ``ok``: it happened, and its output (say, the value a read returned) is known;
- ``fail``: it certainly did not happen, so the checkers drop it;
- ``info`` (or no completion at all, e.g. the log ends first): the outcome is unknown.
  The operation may or may not have taken effect, at any moment after its invocation, so
  its interval extends to infinity (``ret == math.inf``).

Parsing is two steps: each format turns lines into flat `Event`s (one per invoke or
completion, carrying a line number for error messages), then `build_history` pairs every
invoke with the next completion of the same process into an `Operation` with a call time
and a return time. When the format carries no clock, the line number is the time: the log
was written in real-time order, which is all linearizability needs.

Formats
-------
``jepsen``: Jepsen 2014 etcd logs, one event per line, whitespace separated::

    INFO  jepsen.util - 3	:invoke	:cas	[1 4]
    INFO  jepsen.util - 3	:ok	:cas	[1 4]
    INFO  jepsen.util - 0	:info	:write	:timed-out

  Lines that are not client operations (other loggers, the ``:nemesis`` process) are skipped.

``edn``: one EDN map per line, as Jepsen writes ``history.edn``::

    {:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}

  ``:time`` (any unit) is used as the clock when every event has it.

``jsonl``: paxosd's own format, written by the simulator and the chaos harness. One JSON
object per line::

    {"process": 2, "type": "invoke", "f": "put", "key": "x", "value": 7, "time": 0.125}
    {"process": 2, "type": "ok", "f": "put", "key": "x", "value": 7, "time": 0.250, "node": "n1"}

  - ``process`` (required): the client; a client has at most one operation pending.
  - ``type`` (required): ``invoke``, ``ok``, ``fail`` or ``info``.
  - ``f`` (required): ``read``/``write``/``cas`` (register), ``get``/``put``/``delete``/
    ``cas``/``append`` (kv), ``acquire``/``release``/``use`` (locks), ``register``/``lookup``
    (names), ``propose``/``get`` (decisions).
  - ``key`` (optional, default null): the key; null for a single-register history.
  - ``value`` (optional): on the invoke, the input (``null`` for a read, ``[old, new]`` for
    a cas); on an ``ok`` completion, the output (what a read returned).
  - ``time`` (optional, seconds as a float): if any event has it, every event must.
  - ``node`` (optional): the server that answered; informational only.

``porcupine``: Porcupine's operations (``porcupine.Operation``) as Go's encoding/json
writes them, in a JSON array or one per line. Input says what was asked, Output what came
back; an operation without Return (or Output) has an unknown outcome::

    [{"ClientId": 0, "Input": {"Op": "put", "Key": "x", "Value": "1"}, "Call": 0,
      "Output": {"Value": "1"}, "Return": 10},
     {"ClientId": 1, "Input": {"Op": "get", "Key": "x"}, "Call": 5,
      "Output": {"Value": "1"}, "Return": 12}]

  Op is a name (``get``, ``put``, ``append``, ``cas``, ...), a code of Porcupine's own
  key-value test model (0 get, 1 put, 2 append) or, as in its register test, a boolean
  (true read, false write). Field names are matched without regard to case.

Values are frozen on the way in (lists become tuples, maps become sorted item tuples) so
models can keep them in hashable states.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

Value = Any
"""A frozen (hashable) operation value: None, bool, int, float, str, or tuples of these."""


class HistoryError(ValueError):
    """A history that cannot be read or checked; ``line`` (1-based) says where, if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class OpType(StrEnum):
    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


class Format(StrEnum):
    JEPSEN = "jepsen"
    EDN = "edn"
    JSONL = "jsonl"
    PORCUPINE = "porcupine"


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history: an invocation or a completion."""

    process: Hashable
    type: OpType
    f: str
    key: Hashable = None
    value: Value = None
    time: float | None = None
    node: str | None = None
    line: int = 0

    def to_json(self) -> str:
        """This event as one line of the paxosd JSON Lines format (without newline)."""
        obj: dict[str, Any] = {
            "process": self.process,
            "type": str(self.type),
            "f": self.f,
            "key": self.key,
            "value": _thaw(self.value),
        }
        if self.time is not None:
            obj["time"] = self.time
        if self.node is not None:
            obj["node"] = self.node
        return json.dumps(obj)


READ_VERBS = frozenset({"read", "get", "lookup", "learn", "decide", "contains", "dequeue"})
"""Operations whose output is what they read: described as ``get -> 3`` even when 3 is nil."""


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion.

    ``known`` is False when the outcome is unknown (``info`` or no completion); then
    ``output`` is None and ``ret`` is ``math.inf``.
    """

    index: int
    process: Hashable
    f: str
    key: Hashable
    input: Value
    output: Value
    call: float
    ret: float
    known: bool
    invoke_line: int = 0
    complete_line: int | None = None
    node: str | None = None

    def describe(self) -> str:
        """A short human reading, e.g. ``#4 p3 cas (1, 4) -> ok [lines 9-12]``."""
        head = f"#{self.index} {process_label(self.process)} {self.f}"
        if self.input is not None:
            head += f" {_show(self.input)}"
        if not self.known:
            tail = "-> ?"
        elif self.f in READ_VERBS or (self.output is not None and self.output != self.input):
            tail = f"-> {_show(self.output)}"  # a read, or an answer that says something new
        else:
            tail = "-> ok"
        if not self.invoke_line:  # built from events, not read from a file: say when
            end = "?" if self.ret == math.inf else f"{self.ret:g}"
            return f"{head} {tail} [t {self.call:g}-{end}]"
        where = f"line {self.invoke_line}"
        if self.complete_line is not None and self.complete_line != self.invoke_line:
            where = f"lines {self.invoke_line}-{self.complete_line}"
        return f"{head} {tail} [{where}]"


@dataclass(frozen=True, slots=True)
class History:
    """Completed (``ok``) and unknown-outcome operations; ``fail``ed ones are only counted."""

    operations: tuple[Operation, ...]
    source_format: str = "ops"
    failed: int = 0

    @property
    def unknown(self) -> int:
        return sum(1 for op in self.operations if not op.known)

    def keys(self) -> list[Hashable]:
        """Distinct keys in order of first appearance (deterministic, and how people read)."""
        return list(self.by_key())

    def by_key(self) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in self.operations:
            parts.setdefault(op.key, []).append(op)
        return parts


# ---------------------------------------------------------------------------- pairing


def build_history(events: Iterable[Event], source_format: str = "events") -> History:
    """Pair invokes with completions.

    Times are the events' ``time`` if every event has one, else their position (line
    number). A process with an operation pending may not invoke again: that would make the
    pairing ambiguous, and Jepsen never does it (a process whose op timed out is retired).
    """
    events = list(events)
    timed = [e for e in events if e.time is not None]
    if timed and len(timed) != len(events):
        first = next(e for e in events if e.time is None)
        raise HistoryError("'time' missing while other events have it", first.line)

    def when(e: Event, position: int) -> float:
        return float(e.time) if e.time is not None else float(position)

    pending: dict[Hashable, tuple[Event, float, int]] = {}
    # One per invoke, in invocation order: (invoke, its time, completion, its time); None
    # once it failed.
    slots: list[tuple[Event, float, Event | None, float] | None] = []
    failed = 0
    for position, e in enumerate(events):
        t = when(e, position)
        if e.type is OpType.INVOKE:
            if e.process in pending:
                prev = pending[e.process][0]
                raise HistoryError(
                    f"process {e.process} invokes again while its {prev.f} from line "
                    f"{prev.line} is still pending",
                    e.line,
                )
            pending[e.process] = (e, t, len(slots))
            slots.append((e, t, None, math.inf))
            continue
        if e.process not in pending:
            raise HistoryError(f"{e.type} for process {e.process} with no pending invoke", e.line)
        inv, t0, slot = pending.pop(e.process)
        if e.f != inv.f:
            raise HistoryError(
                f"completion is {e.f} but process {e.process} invoked {inv.f} (line {inv.line})",
                e.line,
            )
        if t < t0:
            raise HistoryError(f"completes at {t}, before its invoke at {t0}", e.line)
        if e.type is OpType.FAIL:
            failed += 1
            slots[slot] = None
            continue
        slots[slot] = (inv, t0, e, t)
    paired = (slot for slot in slots if slot is not None)  # never completed: unknown outcome
    ops = tuple(_operation(i, *slot) for i, slot in enumerate(paired))
    return History(ops, source_format, failed)


def _operation(index: int, inv: Event, t0: float, done: Event | None, t: float) -> Operation:
    """An operation from its invoke and its ``ok``/``info`` completion (None: never came)."""
    known = done is not None and done.type is OpType.OK
    return Operation(
        index=index,
        process=inv.process,
        f=inv.f,
        key=inv.key,
        input=inv.value,
        output=done.value if known and done is not None else None,
        call=t0,
        ret=t if known else math.inf,
        known=known,
        invoke_line=inv.line,
        complete_line=None if done is None else done.line,
        node=(done.node if done is not None else None) or inv.node,
    )


# ---------------------------------------------------------------------------- EDN reader

_EDN_DELIMS = set('{}[]()",; \t\r\n')


class _EdnReader:
    """Just enough EDN for Jepsen histories: maps, vectors, lists, sets, strings,
    keywords (kept as ``":name"`` strings), nil/true/false, integers and floats."""

    def __init__(self, text: str, line: int) -> None:
        self.text = text
        self.pos = 0
        self.line = line

    def error(self, message: str) -> HistoryError:
        return HistoryError(f"{message} at column {self.pos + 1}", self.line)

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in " \t\r\n,":
                self.pos += 1
            elif c == ";":
                while self.pos < n and text[self.pos] != "\n":
                    self.pos += 1
            else:
                break

    def read_all(self) -> Value:
        value = self.read()
        self.skip()
        if self.pos != len(self.text):
            raise self.error("unexpected text after the value")
        return value

    def read(self) -> Value:
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("unexpected end of line")
        c = self.text[self.pos]
        if c == "{":
            items = self._seq("}")
            if len(items) % 2:
                raise self.error("map with an odd number of forms")
            return dict(zip(items[::2], items[1::2], strict=True))
        if c == "[" or c == "(":
            return tuple(self._seq("]" if c == "[" else ")"))
        if c == "#":
            if self.text.startswith("#{", self.pos):
                self.pos += 1
                return frozenset(self._seq("}"))
            self.pos += 1
            self._atom()  # a tag such as #inst: keep the tagged value
            return self.read()
        if c == '"':
            return self._string()
        return self._scalar(self._atom())

    def _seq(self, close: str) -> list[Value]:
        self.pos += 1
        items: list[Value] = []
        while True:
            self.skip()
            if self.pos >= len(self.text):
                raise self.error(f"missing {close!r}")
            if self.text[self.pos] == close:
                self.pos += 1
                return items
            items.append(self.read())

    def _string(self) -> str:
        out: list[str] = []
        self.pos += 1
        escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\" and self.pos + 1 < len(self.text):
                out.append(escapes.get(self.text[self.pos + 1], self.text[self.pos + 1]))
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1
        raise self.error("unterminated string")

    def _atom(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _EDN_DELIMS:
            self.pos += 1
        if self.pos == start:
            raise self.error(f"unexpected {self.text[self.pos]!r}")
        return self.text[start : self.pos]

    def _scalar(self, atom: str) -> Value:
        if atom == "nil":
            return None
        if atom == "true":
            return True
        if atom == "false":
            return False
        if atom.startswith(":"):
            return atom
        number = atom[:-1] if atom[-1] in "NM" else atom
        try:
            return int(number)
        except ValueError:
            pass
        try:
            return float(number)
        except ValueError:
            return atom  # a symbol: keep its text


def read_edn(text: str, line: int = 0) -> Value:
    """Read one EDN value (the whole string) into frozen Python values."""
    return _freeze(_EdnReader(text, line).read_all())


# ---------------------------------------------------------------------------- parsers

_JEPSEN_OP = re.compile(r"(?P<process>\S+)\s+:(?P<type>\S+)\s+:(?P<f>\S+)\s*(?P<value>.*?)\s*$")
_JEPSEN_LOGGER = " - "  # "INFO  jepsen.util - " precedes the operation
_OP_TYPES = {t.value for t in OpType}


def parse_jepsen(text: str) -> History:
    """Jepsen 2014-style text logs; the position of a line is its time.

    A line is an operation when, after the logger prefix, it reads ``process :type :f
    [value]`` with a known type; anything else (other loggers, banners, stack traces) is
    skipped, and so is the ``:nemesis`` process, which is not a client.
    """
    events: list[Event] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        body = line.split(_JEPSEN_LOGGER, 1)[1] if _JEPSEN_LOGGER in line else line
        m = _JEPSEN_OP.match(body)
        if m is None or m.group("type") not in _OP_TYPES or m.group("process").startswith(":"):
            continue
        process: Hashable
        try:
            process = int(m.group("process"))
        except ValueError:
            process = m.group("process")
        value_text = m.group("value")
        value = read_edn(value_text, number) if value_text else None
        op_type = OpType(m.group("type"))
        events.append(Event(process, op_type, m.group("f"), None, value, None, None, number))
    return build_history(events, Format.JEPSEN)


def parse_edn(text: str) -> History:
    """One EDN map per line (Jepsen ``history.edn``)."""
    events: list[Event] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        obj = _EdnReader(line, number).read_all()
        if not isinstance(obj, dict):
            raise HistoryError("expected an EDN map {...}", number)
        fields = {_plain(k): _freeze(v) for k, v in obj.items()}
        process = fields.get("process")
        if isinstance(process, str) and process.startswith(":"):
            continue  # the nemesis
        time = fields.get("time")
        if time is not None and not isinstance(time, int | float):
            raise HistoryError(f":time must be a number, not {time!r}", number)
        events.append(_event(fields, number, time))
    return build_history(events, Format.EDN)


def parse_jsonl(text: str) -> History:
    """paxosd JSON Lines (see the module docstring)."""
    events: list[Event] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"invalid JSON: {exc.msg} (column {exc.colno})", number) from None
        if not isinstance(obj, dict):
            raise HistoryError("expected a JSON object", number)
        time = obj.get("time")
        if time is not None and (isinstance(time, bool) or not isinstance(time, int | float)):
            raise HistoryError(f"'time' must be a number, not {time!r}", number)
        node = obj.get("node")
        fields = {k: v if type(v) in _SCALARS else _freeze(v) for k, v in obj.items()}
        events.append(_event(fields, number, time, None if node is None else str(node)))
    return build_history(events, Format.JSONL)


def _event(
    fields: dict[str, Value], number: int, time: float | None, node: str | None = None
) -> Event:
    for name in ("process", "type", "f"):
        if fields.get(name) is None:
            raise HistoryError(f"missing {name!r}", number)
    type_name = _plain(fields["type"])
    try:
        op_type = OpType(type_name)
    except ValueError:
        raise HistoryError(
            f"type must be invoke, ok, fail or info, not {type_name!r}", number
        ) from None
    process = fields["process"]
    if not isinstance(process, Hashable):
        raise HistoryError(f"process must be a scalar, not {process!r}", number)
    return Event(
        process=process,
        type=op_type,
        f=_plain(fields["f"]),
        key=fields.get("key"),
        value=fields.get("value"),
        time=None if time is None else float(time),
        node=node,
        line=number,
    )


def _plain(name: Value) -> str:
    """A field name or keyword without its EDN colon."""
    text = str(name)
    return text[1:] if text.startswith(":") else text


# ---------------------------------------------------------------------------- porcupine

_PORCUPINE_OPS = {0: "get", 1: "put", 2: "append"}
"""Operation codes of Porcupine's own key-value test model."""


def parse_porcupine(text: str) -> History:
    """Porcupine's operations as JSON: an array of ``porcupine.Operation`` objects (or one
    per line), as Go's encoding/json writes them. See the module docstring."""
    stripped = text.lstrip()
    items: list[tuple[int, Any]] = []
    if stripped.startswith("["):
        try:
            array = json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise HistoryError(message, exc.lineno) from None
        if not isinstance(array, list):
            raise HistoryError("expected a JSON array of operations", 1)
        items = [(0, obj) for obj in array]
    else:
        for number, raw in enumerate(text.splitlines(), start=1):
            if raw.strip():
                try:
                    items.append((number, json.loads(raw)))
                except json.JSONDecodeError as exc:
                    raise HistoryError(
                        f"invalid JSON: {exc.msg} (column {exc.colno})", number
                    ) from None
    events: list[Event] = []
    for position, (number, obj) in enumerate(items, start=1):
        where = number or position  # the line, or the operation's position in the array
        events += _porcupine_events(obj, where, position)
    events.sort(key=lambda e: (e.time, e.type is not OpType.INVOKE))
    return build_history(events, Format.PORCUPINE)


def _porcupine_events(obj: Any, where: int, position: int) -> list[Event]:
    if not isinstance(obj, dict):
        raise HistoryError("expected an operation {ClientId, Input, Call, Output, Return}", where)
    fields = {k.lower().replace("_", ""): v for k, v in obj.items()}
    for name in ("input", "call"):
        if name not in fields:
            raise HistoryError(f"operation {position} has no {name.capitalize()}", where)
    call, ret = fields["call"], fields.get("return")
    for label, t in (("Call", call), ("Return", ret)):
        if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
            raise HistoryError(f"{label} must be a number, not {t!r}", where)
    inp = fields["input"]
    if not isinstance(inp, dict):
        raise HistoryError(
            f"Input must be an object {{Op, Key, Value}}, not {json.dumps(inp)}", where
        )
    inp = {k.lower(): v for k, v in inp.items()}
    op = inp.get("op")
    if isinstance(op, bool):  # Porcupine's register test: true reads, false writes
        f = "read" if op else "write"
    elif isinstance(op, int):
        if op not in _PORCUPINE_OPS:
            raise HistoryError(f"unknown Op code {op} (0 get, 1 put, 2 append)", where)
        f = _PORCUPINE_OPS[op]
    elif isinstance(op, str) and op:
        f = op
    else:
        raise HistoryError('Input needs an Op (a name such as "get", or a code)', where)
    process = fields.get("clientid", 0)
    if not isinstance(process, Hashable) or isinstance(process, list | dict):
        raise HistoryError(f"ClientId must be a number or a name, not {process!r}", where)
    key = _freeze(inp.get("key"))
    value = _freeze(inp.get("value"))
    invoke = Event(process, OpType.INVOKE, f, key, value, float(call), None, where)
    output = fields.get("output")
    if ret is None or output is None:  # no return: the outcome is unknown
        return [invoke]
    if float(ret) < float(call):
        raise HistoryError(f"Return {ret} is before Call {call}", where)
    if isinstance(output, dict):
        lowered = {k.lower(): v for k, v in output.items()}
        output = lowered.get("value", lowered.get("output"))
    result = value if f in ("put", "write", "append", "cas") else _freeze(output)
    return [invoke, Event(process, OpType.OK, f, key, result, float(ret), None, where)]


def dump_porcupine(history: History) -> str:
    """The completed and unknown operations as Porcupine operation JSON (the format
    `parse_porcupine` reads and a Go program can hand to porcupine as []Operation).
    Clients become 0-based integers; times become integers (nanoseconds when the history
    has real times, else positions)."""
    clients: dict[Hashable, int] = {}
    integral = all(
        float(op.call).is_integer() and (not op.known or float(op.ret).is_integer())
        for op in history.operations
    )
    scale = 1 if integral else 1_000_000_000

    def stamp(t: float) -> int:
        return round(t * scale)

    out = []
    for op in history.operations:
        obj: dict[str, Any] = {
            "ClientId": clients.setdefault(op.process, len(clients)),
            "Input": {"Op": op.f, "Key": _thaw(op.key), "Value": _thaw(op.input)},
            "Call": stamp(op.call),
            "Output": {"Value": _thaw(op.output)} if op.known else None,
            "Return": stamp(op.ret) if op.known else None,
        }
        out.append(json.dumps(obj))
    return "[\n" + ",\n".join(out) + "\n]\n"


# ---------------------------------------------------------------------------- entry points

PARSERS: dict[Format, Callable[[str], History]] = {
    Format.JEPSEN: parse_jepsen,
    Format.EDN: parse_edn,
    Format.JSONL: parse_jsonl,
    Format.PORCUPINE: parse_porcupine,
}


def detect_format(text: str) -> Format:
    """Guess from the first non-empty line: ``{"`` is JSON, ``{:`` is EDN, a Jepsen
    ``process :type :f`` line is Jepsen."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("[") or re.match(r'\{\s*"(ClientId|Input|Call)"', line):
            return Format.PORCUPINE
        if re.match(r'\{\s*"', line) or line == "{}":
            return Format.JSONL
        if re.match(r"\{\s*:", line):
            return Format.EDN
        if "jepsen" in line or re.search(r"\s:(invoke|ok|fail|info)\s", line):
            return Format.JEPSEN
        raise HistoryError(
            "cannot tell the format (expected jepsen, edn, jsonl or porcupine)", number
        )
    raise HistoryError("the history is empty")


def parse_history(text: str, fmt: Format | str | None = None) -> History:
    """Parse ``text`` in ``fmt``, or in the detected format when ``fmt`` is None."""
    chosen = detect_format(text) if fmt is None else Format(fmt)
    return PARSERS[chosen](text)


def load_history(path: str | Path, fmt: Format | str | None = None) -> History:
    """Read and parse a history file (gzip-compressed if its name ends in ``.gz``); OS
    errors become `HistoryError`."""
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as compressed:
                text = compressed.read()
        else:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HistoryError(f"cannot read the file: {reason}") from None
    return parse_history(text, fmt)


def dump_jsonl(events: Iterable[Event]) -> str:
    """Events in the paxosd JSON Lines format, one per line."""
    return "".join(e.to_json() + "\n" for e in events)


# ---------------------------------------------------------------------------- values


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _freeze(value: Any) -> Value:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((_freeze(k), _freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, set | frozenset):
        return frozenset(_freeze(v) for v in value)
    return value


def _thaw(value: Value) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, frozenset):
        return sorted((_thaw(v) for v in value), key=repr)
    return value


def as_mapping(value: Value) -> dict[Any, Value] | None:
    """A frozen map (tuple of pairs) back as a dict, or None if ``value`` is not one.

    Note the ambiguity this resolves conservatively: a frozen map is a tuple of 2-tuples,
    and keys that are EDN keywords lose their colon.
    """
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return {_plain(k) if isinstance(k, str) else k: v for k, v in value}
    return None


def process_label(process: Hashable) -> str:
    """``p3`` for Jepsen's numbered processes, the name itself for named clients."""
    return f"p{process}" if isinstance(process, int) else str(process)


def _show(value: Value) -> str:
    if _looks_like_map(value):
        return "{" + ", ".join(f"{k} {_show(v)}" for k, v in value) + "}"
    if isinstance(value, tuple):
        return "[" + " ".join(_show(v) for v in value) + "]"
    if value is None:
        return "nil"
    return repr(value) if isinstance(value, str) else str(value)


def _looks_like_map(value: Value) -> bool:
    """A frozen map: a non-empty tuple of (string, value) pairs."""
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value)
    )


def show_value(value: Value) -> str:
    """How explanations print a value: ``nil``, ``3``, ``'abc'``, ``[1 4]``."""
    return _show(value)


__all__ = [
    "Event",
    "Format",
    "History",
    "HistoryError",
    "OpType",
    "Operation",
    "as_mapping",
    "build_history",
    "detect_format",
    "dump_jsonl",
    "dump_porcupine",
    "load_history",
    "parse_edn",
    "parse_history",
    "parse_jepsen",
    "parse_jsonl",
    "parse_porcupine",
    "process_label",
    "read_edn",
    "show_value",
]
