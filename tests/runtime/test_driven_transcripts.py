"""Golden transcripts through the real driver (tests/runtime/driven.py): each script drives
nodes that are `Driver`s over real in-memory stores, with syncs and snapshot work that finish
only when the script says, and its transcript is every host call in order.

A script (tests/runtime/testdata/NAME.txt) is a sequence of commands, each `> ` and a line;
the expected transcript follows each. Commands:

    elect N                      N times out and wins (everything settles)
    propose N KEY VALUE [SEQ]    a client's put at node N (answered as wSEQ)
    read N ID KEY                a client's linearizable read at node N (answered as rID)
    tick N [TIMES]               logical time passes at N (10 ms a tick)
    deliver [src=N] [dst=N] [type=T]   deliver the messages in flight that match
    drop [src=N] [dst=N] [type=T]      lose them
    sync N                       N's running sync returns
    work N                       N's snapshot work (a write or a restore) finishes
    settle                       every sync and work finishes, every message is delivered
    crash N / restart N          the process dies (unsynced writes are lost) / starts again
    wipe N                       N's disk is lost; it restarts on a store made by
                                 `paxosd node --reinitialize` (rebuilding)
    isolate N / heal N           N's messages to and from its peers are lost / arrive again
    status N                     the replica's status

After each command, every node that asked for a turn gets one (a node whose sync runs waits
for it). When a change alters a transcript on purpose, regenerate with
`PAXOSD_REWRITE_GOLDEN=1 pytest tests/runtime/test_driven_transcripts.py` and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.records import Configured, Rebuilding
from paxosd.core.types import Envelope, describe
from paxosd.service import Get, Put, Request, encode
from paxosd.storage import MemoryLog, make_identity

from .driven import DrivenNet

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))
# Small limits, so that a script of a few dozen lines reaches snapshots and chunked transfers;
# no values kept behind a snapshot, so that a peer behind one is sent it (the values kept are
# tests/core/multi/test_catchup.py's).
CONFIG = EngineConfig(snapshot_every_slots=4, snapshot_chunk_bytes=64, retained_bytes_max=0)


def _matcher(args: list[str]) -> Callable[[Envelope], bool]:
    want = dict(arg.split("=", 1) for arg in args)

    def match(envelope: Envelope) -> bool:
        return (
            ("src" not in want or envelope.src == int(want["src"]))
            and ("dst" not in want or envelope.dst == int(want["dst"]))
            and ("type" not in want or type(envelope.msg).__name__ == want["type"])
        )

    return match


def run_command(net: DrivenNet, line: str) -> None:
    verb, *args = line.split()
    if verb == "elect":
        net.elect(int(args[0]))
    elif verb == "propose":
        node, key, value = int(args[0]), args[1], args[2]
        seq = int(args[3]) if len(args) > 3 else 1
        payload = encode(Request(client_id="c", seq=seq, op=Put(key=key, value=value)))
        net.driver(node).submit_write(("c", seq), payload, f"w{seq}", retry_safe=True)
    elif verb == "read":
        node, read_id, key = int(args[0]), args[1], args[2]
        net.driver(node).submit_read(Get(key=key), f"r{read_id}")
    elif verb == "tick":
        net.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)
    elif verb == "deliver":
        net.deliver(_matcher(args))
    elif verb == "drop":
        match = _matcher(args)
        net.out += [f"dropped {e}" for e in net.inbox if match(e)]
        net.inbox = [e for e in net.inbox if not match(e)]
    elif verb == "isolate":
        net.isolated.add(int(args[0]))
    elif verb == "heal":
        net.isolated.discard(int(args[0]))
    elif verb == "sync":
        net.nodes[int(args[0])].finish_sync()
    elif verb == "work":
        net.nodes[int(args[0])].finish_work()
    elif verb == "settle":
        net.settle()
    elif verb == "crash":
        node = int(args[0])
        net.nodes[node].crash()
        net.inbox = [e for e in net.inbox if e.dst != node]
    elif verb == "restart":
        net.nodes[int(args[0])].start()
    elif verb == "wipe":
        node = net.nodes[int(args[0])]
        node.crash()
        node.disk = MemoryLog(make_identity("driven", node.node_id))
        node.disk.write([Configured(net.configuration), Rebuilding(True)])
        node.disk.sync()
        node.start()
    elif verb == "status":
        status = net.nodes[int(args[0])].replica.status()
        waits = "".join(f" waits for n{p}: {w.value}" for p, w in status.rebuild_waiting_for)
        net.out.append(
            f"n{status.node_id} {status.role.value} leader={status.leader} "
            f"promised={status.promised} chosen={status.chosen_upto} applied={status.applied} "
            f"snapshot={status.snapshot_slot}{waits}"
        )
    else:
        raise ValueError(f"unknown command {line!r}")
    net.run_turns()


def transcript(script: str) -> str:
    net = DrivenNet(nodes=3, config=CONFIG, seed=1)
    blocks: list[str] = []
    for line in script.splitlines():
        if not line.startswith("> "):
            continue
        command = line[2:].strip()
        net.out = []
        run_command(net, command)
        in_flight = ", ".join(describe(e.msg) for e in net.inbox) or "nothing"
        blocks.append("\n".join([f"> {command}", *net.out, f"(in flight: {in_flight})"]))
    return "\n\n".join(blocks) + "\n"


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_driven_script_matches_its_golden_transcript(path: Path) -> None:
    text = path.read_text()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    got = "\n".join(comments) + "\n\n" + transcript(text) if comments else transcript(text)
    if os.environ.get("PAXOSD_REWRITE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text(), (
        f"{path.name} changed; if on purpose, rerun with PAXOSD_REWRITE_GOLDEN=1 and review"
    )


def test_there_are_scripts() -> None:
    assert len(SCRIPTS) >= 5
