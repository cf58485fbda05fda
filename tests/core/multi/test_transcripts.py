"""Golden transcripts of the Multi-Paxos engine: small scripts over hand-driven replicas, each
with the expected record of what every turn handed over (records, messages, applied commands,
notes), in the manner of etcd's raft interaction tests.

A script (tests/core/multi/testdata/NAME.txt) is a sequence of blocks:

    > elect 1
    ...the expected transcript...

Commands: `elect N`, `propose N KEY VALUE [SEQ]`, `read N ID KEY`, `turn N`, `tick N [TIMES]`,
`deliver [src=N] [dst=N] [type=T]`, `deliver-all`, `drop [src=N] [dst=N] [type=T]`,
`crash N`, `restart N`, `wipe N` (a lost disk, rebuilt as `--reinitialize` does),
`status N`. When a change alters a transcript on purpose, regenerate them with
`PAXOSD_REWRITE_GOLDEN=1 pytest tests/core/multi/test_transcripts.py` and review the diff."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paxosd.core.multi.ready import ReadDone, Ready
from paxosd.core.multi.records import Configured, Rebuilding
from paxosd.core.types import Envelope, describe
from paxosd.service import Get, Request, decode
from paxosd.storage.snapshots import MemorySnapshots

from .harness import Net, put

TESTDATA = Path(__file__).parent / "testdata"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))


class TracedNet(Net):
    """The test harness, writing down every turn that handed anything over."""

    def __init__(self) -> None:
        self.out: list[str] = []
        super().__init__(nodes=3, seed=1)

    def turn(self, node: int, stamp: bytes | None = None) -> Ready:
        ready = super().turn(node, stamp)
        out = self.out
        for record in ready.records:
            out.append(f"n{node} persists {_record(record)}")
        for label, envelopes in (("early", ready.send_now), ("sends", ready.send_after_sync)):
            for envelope in envelopes:
                out.append(f"n{node} {label} {envelope}")
        for applied in ready.applied:
            out.append(f"n{node} applies slot {applied.slot}: {_command(applied.payload)}")
        for read in ready.reads:
            answer = f"= {read.result.to_json()}" if isinstance(read, ReadDone) else "refused"
            out.append(f"n{node} read {read.read_id} {answer}")
        for note in ready.notes:
            out.append(f"n{node} note {note}")
        return ready


def _record(record: Any) -> str:
    name = type(record).__name__
    fields = {k: getattr(record, k) for k in record.__dataclass_fields__}
    if "batch" in fields:
        fields["batch"] = [_command(c) for c in fields["batch"]]
    if "data" in fields:
        fields["data"] = f"<{len(fields['data'])} bytes>"
    return f"{name}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def _command(payload: bytes) -> str:
    if not payload:
        return "no-op"
    command = decode(payload)
    if isinstance(command, Request):
        return f"{command.client_id}#{command.seq} {type(command.op).__name__} {command.op.key}"
    return type(command).__name__


def _matcher(args: list[str]) -> Callable[[Envelope], bool]:
    want = dict(arg.split("=", 1) for arg in args)

    def match(envelope: Envelope) -> bool:
        return (
            ("src" not in want or envelope.src == int(want["src"]))
            and ("dst" not in want or envelope.dst == int(want["dst"]))
            and ("type" not in want or type(envelope.msg).__name__ == want["type"])
        )

    return match


def run_command(net: TracedNet, line: str) -> None:
    verb, *args = line.split()
    if verb == "elect":
        net.elect(int(args[0]))
    elif verb == "propose":
        node, key, value = int(args[0]), args[1], args[2]
        seq = int(args[3]) if len(args) > 3 else 1
        outcome = net.call(node, lambda r: r.propose(put(key, value, seq=seq)))
        net.out.append(f"n{node} propose: {outcome.value}")
    elif verb == "read":
        node, read_id, key = int(args[0]), int(args[1]), args[2]
        net.call(node, lambda r: r.read(read_id, Get(key=key)))
    elif verb == "turn":
        net.turn(int(args[0]))
    elif verb == "tick":
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            net.call(int(args[0]), lambda r: r.tick())
    elif verb == "deliver":
        net.deliver(_matcher(args))
    elif verb == "deliver-all":
        net.deliver_all()
    elif verb == "drop":
        match = _matcher(args)
        net.out += [f"dropped {e}" for e in net.inbox if match(e)]
        net.drop(match)
    elif verb == "crash":
        net.crash(int(args[0]))
    elif verb == "restart":
        net.restart(int(args[0]))
    elif verb == "wipe":
        node = int(args[0])
        net.crash(node)
        net.disks[node] = [Configured(net.configuration), Rebuilding(True)]
        net.files[node] = MemorySnapshots()
        net.restart(node)
    elif verb == "status":
        status = net.replicas[int(args[0])].status()
        net.out.append(
            f"n{status.node_id} {status.role.value} leader={status.leader} "
            f"ballot={status.ballot} promised={status.promised} chosen={status.chosen_upto} "
            f"applied={status.applied}"
            + "".join(f" waits for n{p}: {why.value}" for p, why in status.rebuild_waiting_for)
        )
    else:
        raise ValueError(f"unknown command {line!r}")


def transcript(script: str) -> str:
    net = TracedNet()
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
def test_engine_script_matches_its_golden_transcript(path: Path) -> None:
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
