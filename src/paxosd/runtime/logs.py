"""Operator logs: one line per event, as `key=value` pairs or as JSON.

Every event a node reports (a leader change, a peer lost, a snapshot taken, a shutdown) goes
through `event()`, so all of them read the same way and a log shipper can parse them:

    2026-12-01T20:18:51.123Z INFO node=2 event=leader_changed leader=3 ballot=7.3

or, with `setup(fmt="json")`, one JSON object per line:

    {"ts": "2026-12-01T20:18:51.123Z", "level": "INFO", "node": 2, "event": "leader_changed",
     "leader": 3, "ballot": "7.3"}

`setup()` picks the format and the level for the whole process. A record logged the plain way
(`log.warning("...")`, from paxosd or a library) becomes a line of the same shape with
`logger=` and `msg=` instead of `event=`, and a traceback stays on that one line (as an
escaped `traceback=` value, or a JSON string), so one line is always one record.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import traceback
from typing import Any, TextIO

__all__ = ["FORMATS", "LEVELS", "LineFormatter", "event", "level_number", "setup"]

FORMATS = ("kv", "json")
LEVELS = ("debug", "info", "warning", "error")
# Keys of the line itself; an event field with one of these names is renamed, never lost.
_RESERVED = ("ts", "level", "node", "event", "logger", "msg", "traceback")


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event: `name` says what happened, `fields` the facts, in the order given."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([f"event={name}", *(f"{key}={_show(value)}" for key, value in fields.items())])
    logger.log(level, text, extra={"event": name, "fields": fields})


def level_number(level: str | int) -> int:
    """`"info"` (any case) or a `logging` level number -> the number; ValueError otherwise."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if level.lower() not in LEVELS or not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    return number


def setup(
    level: str | int = "info",
    fmt: str = "kv",
    *,
    node_id: int | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record of this process, at `level` and above, to `stream` (stderr) in
    format `fmt` ("kv" or "json"), each line naming `node_id` if given. Replaces the handlers
    an earlier call installed, so calling it twice does not double the lines."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_paxosd", False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(LineFormatter(fmt, node_id=node_id))
    handler._paxosd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level_number(level))
    return handler


class LineFormatter(logging.Formatter):
    """One record -> one line, `kv` or `json`. `node_id` names the node the line is about;
    an event field `node` equal to it is not repeated."""

    def __init__(self, fmt: str = "kv", *, node_id: int | None = None) -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"unknown log format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.fmt = fmt
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, Any]] = [("ts", _timestamp(record.created))]
        pairs.append(("level", record.levelname))
        if self.node_id is not None:
            pairs.append(("node", self.node_id))
        name = getattr(record, "event", None)
        fields = getattr(record, "fields", None)
        if isinstance(name, str) and isinstance(fields, dict):
            pairs.append(("event", name))
            for key, value in fields.items():
                if key == "node" and self.node_id is None:
                    pairs.append((key, value))  # a line about a node, from outside it
                elif key == "node" and value == self.node_id:
                    continue
                else:
                    pairs.append((f"{key}_" if key in _RESERVED else key, value))
        else:
            pairs += [("logger", record.name), ("msg", record.getMessage())]
        if record.exc_info:
            pairs.append(("traceback", "".join(traceback.format_exception(*record.exc_info))))
        if self.fmt == "json":
            return json.dumps({k: _finite(v) for k, v in pairs}, default=str, allow_nan=False)
        # The timestamp and level lead without their keys, as in most log formats.
        return " ".join([pairs[0][1], pairs[1][1], *(f"{k}={_show(v)}" for k, v in pairs[2:])])


def _timestamp(created: float) -> str:
    """ISO 8601 in UTC with milliseconds: 2026-12-01T20:18:51.123Z."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created * 1000) % 1000:03d}Z"


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: they go out as strings."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _show(value: Any) -> str:
    """A value as one kv token: quoted (with escapes) when it holds spaces, quotes, `=` or
    line breaks; `true`/`false`/`none` for Python's constants."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'
    return text
