"""The key-value machine against a naive reference model (kv_model.py): the same random
sequences of puts, deletes, ranges, transactions and compactions give identical answers,
revisions included, with a snapshot and restore anywhere in between."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paxosd.check.kv_reference import KvModel
from paxosd.service import BadCommand, Request, Router, encode, is_read
from paxosd.service.kv import Compact, KvLimits
from paxosd.service.namespace import Options

from .helpers import fuzz
from .kv_strategies import kv_ops

steps = st.lists(st.tuples(st.sampled_from(("log", "read")), kv_ops), min_size=8, max_size=40)


class Machine:
    """The router, fed as the engine feeds it: encoded requests in slots, reads direct."""

    def __init__(self, limits: KvLimits) -> None:
        self.router = Router(options=Options(kv_limits=limits))
        self.slot = 0
        self.seq = 0

    def log(self, op: Any) -> Any:
        self.slot += 1
        self.seq += 1
        answer, _ = self.router.apply(
            self.slot, encode(Request(client_id="c", seq=self.seq, op=op))
        )
        return answer

    def read(self, op: Any) -> Any:
        return self.router.read(op)


def run(ops: list[tuple[str, Any]], cut: int | None, limits: KvLimits) -> None:
    machine, model = Machine(limits), KvModel(limits)
    for i, (how, op) in enumerate(ops):
        if i == cut:
            data = machine.router.snapshot()
            restored = Router.restore(data, options=Options(kv_limits=limits))
            assert restored.snapshot() == data
            machine.router = restored
        try:
            encode(op)
        except BadCommand:
            continue  # refused before the log, on both sides
        if how == "read" and is_read(op):
            got, want = machine.read(op), model.read(op)
        else:
            got, want = machine.log(op), model.apply(op)
        assert got == want, f"step {i}: {op!r}\n machine {got!r}\n model   {want!r}"
        assert machine.router.revision == model.revision
    machine.router.kv.store.invariants()


@given(steps, st.data())
@fuzz(300)
def test_machine_answers_as_the_model(ops: list[tuple[str, Any]], data: st.DataObject) -> None:
    """Identical answers, revisions and errors included, snapshot and restore anywhere."""
    cut = data.draw(st.none() | st.integers(0, max(0, len(ops) - 1)))
    run(ops, cut, KvLimits())


@given(steps)
@fuzz(150)
def test_machine_answers_as_the_model_under_tight_limits(ops: list[tuple[str, Any]]) -> None:
    """With answer limits that bite: the same refusals, and a refused transaction changes
    nothing on either side."""
    run(ops, None, KvLimits(range_keys_max=2, range_bytes_max=12))


def test_a_known_story() -> None:
    """A hand-written history both sides must agree on (it exercises the differential harness
    itself: compaction, history reads, a transaction, an answer refused)."""
    from paxosd.service.kv import DeleteRange, Put, Range, Txn

    ops: list[tuple[str, Any]] = [
        ("log", Put(key=b"a", value=b"1")),
        ("log", Put(key=b"b", value=b"2")),
        ("log", DeleteRange(key=b"a", range_end=b"\0", prev_kv=True)),
        ("read", Range(key=b"a", range_end=b"\0", revision=3)),
        ("log", Compact(revision=3)),
        ("read", Range(key=b"a", revision=2)),
        ("log", Txn(success=(Put(key=b"a", value=b"x"), Range(key=b"a", range_end=b"\0")))),
        ("read", Range(key=b"a", range_end=b"\0", revision=3)),
    ]
    run(ops, 4, KvLimits())
