"""One trace format for every run: a list of events, written as JSON Lines.

Each event is a flat dict with at least `t` (virtual milliseconds, or the step number in an
explored run), `seq` (a global counter that orders events at the same instant) and `ev`.
Event kinds and their extra fields:

- `send`     src, dst, msg, id        a message leaves src (id links it to its delivery)
- `recv`     src, dst, msg, id        the message is handed to dst's core
- `drop`     src, dst, msg, id, why   lost: "loss", "partition", "crashed"
- `dup`      src, dst, msg, id        the network delivers an extra copy
- `propose`  node, value              a client calls propose(value) at node
- `decide`   node, value              node's query() now answers value
- `note`     node, text               a state change the core reported
- `crash`    node                     node stops; unsynced writes are lost
- `restart`  node                     node comes back from its durable state
- `cut`      links                    the listed [src, dst] links stop delivering
- `heal`     links                    they deliver again
- `slow`     node, factor             node runs `factor` times slower
- `timeout`  node                     a timer fired (explored runs show it; simulated runs log
                                      only ticks that did something, as notes)
- `tick`                              time passes for every node at once (explored runs under
                                      bounded timing)
- `phase`    name                     the run enters the "safety" or "liveness" phase

Message events (send, recv, drop, dup) also carry `family`, the message's kind for drawing
and grouping ("phase1", "phase2", "nack", ...; see `FAMILIES`), taken from the message object
when it is sent, so no reader ever has to parse `msg` to know what a message is.

The same seed gives the same list, and `dumps` gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from paxosd.core.types import Envelope, describe

__all__ = ["FAMILIES", "Event", "dumps", "family_of", "loads", "message_fields", "render"]

Event = dict[str, Any]

# Every message family, with what it groups. Messages name their family in a `family` class
# attribute, the teaching cores' and the engine's alike.
FAMILIES: dict[str, str] = {
    "phase1": "Prepare / Promise (phase 1)",
    "phase2": "Accept / Accepted (phase 2)",
    "nack": "Nack",
    "learn": "Decided / Query / Commit",
    "vote": "Propose / Vote",
    "election": "PreVote / PreVoteReply",
    "heartbeat": "Heartbeat / Ack",
    "catchup": "CatchUp / Entries / SnapshotInstall",
    "read": "ReadIndex / ReadIndexReply",
    "forward": "Forward",
    "rebuild": "StateQuery / StateReport (rebuilding a lost store)",
    "client": "Set / Get / Value",
    "other": "other messages",
}


def family_of(msg: Any) -> str:
    """The family a message declares (`family`, a class attribute, or a property of a message
    that wraps another), or "other"."""
    declared = getattr(msg, "family", None)
    if isinstance(declared, str) and declared in FAMILIES:
        return declared
    return "other"


def message_fields(envelope: Envelope, message_id: int) -> dict[str, Any]:
    """The fields every message event of `envelope` carries."""
    return {
        "src": envelope.src,
        "dst": envelope.dst,
        "msg": describe(envelope.msg),
        "family": family_of(envelope.msg),
        "id": message_id,
    }


def dumps(events: Iterable[Event]) -> str:
    """JSON Lines, keys in a fixed order, so equal traces are equal byte for byte."""
    return "".join(json.dumps(event, sort_keys=True, default=str) + "\n" for event in events)


def loads(text: str) -> list[Event]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def render(event: Event) -> str:
    """One line a person can read."""
    kind = event["ev"]
    match kind:
        case "send":
            return f"{event['src']} sends {event['msg']} to {event['dst']}"
        case "recv":
            return f"{event['dst']} receives {event['msg']} from {event['src']}"
        case "drop":
            return f"{event['src']}->{event['dst']} {event['msg']} is dropped ({event['why']})"
        case "dup":
            return f"the network duplicates {event['msg']} from {event['src']} to {event['dst']}"
        case "propose":
            return f"client at {event['node']} proposes {event['value']}"
        case "decide":
            return f"{event['node']} decides {event['value']}"
        case "note":
            return f"{event['node']} {event['text']}"
        case "crash":
            return f"{event['node']} crashes"
        case "restart":
            return f"{event['node']} restarts from its durable state"
        case "cut":
            return "partition: " + ", ".join(f"{a}-/->{b}" for a, b in event["links"])
        case "heal":
            return "partition heals"
        case "slow":
            return f"{event['node']} becomes {event['factor']}x slower"
        case "timeout":
            return f"{event['node']} times out"
        case "tick":
            return "time passes (every node's timer ticks)"
        case "phase":
            return f"--- {event['name']} phase ---"
        case _:
            return json.dumps(event, sort_keys=True, default=str)
