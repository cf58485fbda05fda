"""The diagram's input: trace events checked field by field, the lanes they need, their text.

A trace is the simulator's list of event dicts (see `paxosd.sim.trace`). Drawing needs more
than the trace format promises in a few places (a `seq` on every event, numbers where ids
go), so the checks live here and name the seq of the first event that breaks them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paxosd.sim.trace import render

__all__ = [
    "VALUE_COLOURS",
    "Event",
    "Highlight",
    "NodeKey",
    "family_key",
    "full_title",
    "is_node",
    "lanes",
    "links",
    "text",
    "validated",
    "value_colour",
    "value_named",
]

Event = Mapping[str, Any]
NodeKey = int | str

# The lab's value names (paxosd.lab.values.COLOURS) drawn in their own colour.
VALUE_COLOURS: dict[str, str] = {
    "red": "#e03131",
    "blue": "#1c7ed6",
    "green": "#2f9e44",
    "amber": "#f59f00",
    "violet": "#7048e8",
    "cyan": "#15aabf",
    "white": "#ffffff",
    "black": "#212529",
}
_VALUE_WORD = re.compile(r"\b(" + "|".join(VALUE_COLOURS) + r")\b")

_REQUIRED: dict[str, tuple[str, ...]] = {
    "send": ("src", "dst", "msg", "id"),
    "recv": ("src", "dst", "msg", "id"),
    "drop": ("src", "dst", "msg", "id", "why"),
    "dup": ("src", "dst", "msg", "id"),
    "propose": ("node", "value"),
    "decide": ("node", "value"),
    "note": ("node", "text"),
    "crash": ("node",),
    "restart": ("node",),
    "cut": ("links",),
    "heal": (),
    "slow": ("node", "factor"),
    "timeout": ("node",),
    "phase": ("name",),
}
_NODE_FIELDS = ("src", "dst", "node")
MESSAGE_KINDS = ("send", "recv", "drop", "dup")


@dataclass(frozen=True)
class Highlight:
    """What to point out in a run: where a value was chosen and why it survived.

    `witness` is the acceptor in both the quorum that accepted the value and the quorum that
    later promised a higher ballot (it reports the value, so the new proposer must carry it on).
    """

    chosen_at: int | None = None
    witness: int | None = None
    accepting_quorum: tuple[int, ...] = ()
    promising_quorum: tuple[int, ...] = ()
    caption: str = ""


def validated(trace: Iterable[Any]) -> list[Event]:
    """Events in seq order; ValueError naming the seq of the first malformed one."""
    events: list[Event] = []
    for index, event in enumerate(trace):
        if not isinstance(event, Mapping):
            raise ValueError(f"trace entry #{index} is not an event dict: {event!r}")
        if "seq" not in event:
            raise ValueError(f"trace entry #{index} has no 'seq' field: {dict(event)!r}")
        seq = event["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"event with seq {seq!r}: 'seq' must be an integer")
        missing = [name for name in ("t", "ev") if name not in event]
        missing += [name for name in _REQUIRED.get(str(event.get("ev")), ()) if name not in event]
        if missing:
            kind = event.get("ev", "?")
            raise ValueError(
                f"event seq {seq} ({kind}) is missing required field(s): {', '.join(missing)}"
            )
        for name in _NODE_FIELDS:
            if name in event and not is_node(event[name]):
                raise ValueError(f"event seq {seq}: {name} must be a node id, not {event[name]!r}")
        if "id" in event and not is_node(event["id"]):  # ids are ints; strings are harmless
            raise ValueError(f"event seq {seq}: id must be an integer, not {event['id']!r}")
        if event["ev"] in ("cut", "heal") and event.get("links") is not None:
            links(event)  # raises on a malformed list
        events.append(event)
    events.sort(key=lambda e: e["seq"])
    return events


def is_node(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def links(event: Event) -> list[tuple[NodeKey, NodeKey]]:
    found: list[tuple[NodeKey, NodeKey]] = []
    raw = event.get("links") or []
    if not isinstance(raw, list | tuple):
        raise ValueError(f"event seq {event['seq']}: links must be a list of [src, dst] pairs")
    for link in raw:
        if not isinstance(link, list | tuple) or len(link) != 2 or not all(map(is_node, link)):
            raise ValueError(f"event seq {event['seq']}: bad link {link!r}, want [src, dst]")
        found.append((link[0], link[1]))
    return found


def _node_order(node: NodeKey) -> tuple[int, int, str]:
    return (0, node, "") if isinstance(node, int) else (1, 0, node)


def lanes(events: Sequence[Event], nodes: Sequence[NodeKey] | None) -> list[NodeKey]:
    """Every node given or mentioned, by id. Mentioned-but-not-given nodes get a lane too,
    rather than an error, so a partial `nodes` list never loses events."""
    seen: set[NodeKey] = set(nodes or ())
    for event in events:
        for name in _NODE_FIELDS:
            if name in event:
                seen.add(event[name])
        if event["ev"] in ("cut", "heal"):
            for a, b in links(event):
                seen.update((a, b))
    return sorted(seen, key=_node_order)


def text(event: Event) -> str:
    """The trace module's one-line rendering, never failing on odd input."""
    try:
        line = render(dict(event))
    except (KeyError, TypeError, ValueError):
        line = json.dumps(dict(event), sort_keys=True, default=str)
    if event["ev"] == "crash" and event.get("lost_writes"):
        line += f" (unsynced writes lost: {event['lost_writes']})"
    return line


def full_title(event: Event) -> str:
    return f"#{event['seq']}  t={event['t']}  {text(event)}"


def family_key(event: Event) -> str:
    """The message family the trace recorded when the message was sent ("other" if none)."""
    family = event.get("family")
    return family if isinstance(family, str) else "other"


def value_named(text: str) -> str | None:
    """The first lab value named in `text` ("Accept(1.2, red)" -> "red")."""
    match = _VALUE_WORD.search(text)
    return match.group(1) if match else None


def value_colour(text: str) -> str | None:
    """The colour of the first lab value named in `text`."""
    value = value_named(text)
    return VALUE_COLOURS[value] if value else None
