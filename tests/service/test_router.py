"""The router: one log, several state machines, exactly-once for all, no shared state."""

from __future__ import annotations

from paxosd.service import (
    AdvanceTime,
    DecisionGet,
    Get,
    LockAcquire,
    LockStatus,
    NameLookup,
    NameRegister,
    Put,
    Request,
    Router,
    StateMachine,
    encode,
    is_read,
)
from paxosd.service.commands import _BY_CLASS, _BY_TAG
from paxosd.service.registry import NAMESPACES
from paxosd.service.results import LockResult, NameResult, Written

from .helpers import Log


def test_every_op_belongs_to_exactly_one_namespace_and_tag() -> None:
    """Tags and classes are unique across namespaces; every op has a state machine."""
    classes = [codec.cls for ns in NAMESPACES for codec in ns.codecs]
    tags = [codec.tag for ns in NAMESPACES for codec in ns.codecs]
    assert len(set(classes)) == len(classes) == len(_BY_CLASS)
    assert len(set(tags)) == len(tags) == len(_BY_TAG)
    handled = set(Router()._handlers)
    assert handled == set(classes)


def test_reads_are_told_by_the_op() -> None:
    """The hosts route by `is_read`, not by a list of types."""
    for op in (Get(key="k"), LockStatus(name="l"), NameLookup(name="n"), DecisionGet(id="d")):
        assert is_read(op)
    for op in (Put(key="k", value=1), LockAcquire(name="l", owner="o", ttl_ms=100)):
        assert not is_read(op)
    for not_an_op in (
        None,
        "Get k",
        AdvanceTime(now_ms=1),
        Request(client_id="c", seq=1, op=Get(key="k")),
    ):
        assert not is_read(not_an_op)


def test_two_routers_share_nothing() -> None:
    """Nothing is module-level state: two Paxos groups in one process stay apart."""
    one, two = Log(Router()), Log(Router())
    assert one.request("c", 1, Put(key="k", value=1)) == Written(key="k", revision=2)
    assert two.request("c", 1, Put(key="k", value=2)) == Written(key="k", revision=2)
    assert one.request("c", 1, Put(key="k", value=1)) == Written(key="k", revision=2)
    assert one.run(Get(key="k")).value == 1 and two.run(Get(key="k")).value == 2  # type: ignore[union-attr]
    one.run(NameRegister(name="n", owner="a"))
    assert two.run(NameRegister(name="n", owner="b")) == NameResult(
        registered=True, name="n", owner="b"
    )


def test_sessions_cover_every_namespace() -> None:
    """One client's seqs are exactly-once across the key-value store and coordination."""
    log = Log()
    first = log.request("c", 1, LockAcquire(name="l", owner="c", ttl_ms=1000))
    assert isinstance(first, LockResult) and first.fencing_token == 1
    assert log.request("c", 1, LockAcquire(name="l", owner="c", ttl_ms=1000)) == first
    assert log.request("c", 2, Put(key="k", value=1)) == Written(key="k", revision=2)
    assert log.request("c", 2, Put(key="k", value=1)) == Written(key="k", revision=2)
    assert log.machine.revision == 2


def test_log_time_has_the_engine_names() -> None:
    """`log_time_ms` and `wants_log_time` (the engine's protocol), moved by AdvanceTime only
    forward; a lease makes the router want log time until it may have expired."""
    machine = StateMachine()
    assert machine.log_time_ms == 0 and not machine.wants_log_time
    machine.apply(1, encode(AdvanceTime(now_ms=50)))
    machine.apply(2, encode(LockAcquire(name="l", owner="o", ttl_ms=100)))
    assert machine.wants_log_time
    machine.apply(3, encode(AdvanceTime(now_ms=40)))
    assert machine.log_time_ms == 50
    machine.apply(4, encode(AdvanceTime(now_ms=151)))
    assert machine.log_time_ms == 151 and not machine.wants_log_time
