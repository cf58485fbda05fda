"""Exactly-once client sessions: cached answers for retries, stale refusals, bounded LRU table."""

from __future__ import annotations

from paxosd.service import (
    Error,
    Get,
    LockAcquire,
    LockRefresh,
    Put,
    StateMachine,
    Value,
    Written,
)

from .helpers import Log


def test_retry_of_last_seq_returns_cached_answer_without_reapplying() -> None:
    """A request chosen twice (client retry) takes effect once and answers the same both times."""
    log = Log()
    first = log.request("c1", 1, Put(key="k", value="v"))
    again = log.request("c1", 1, Put(key="k", value="v"))
    assert first == again == Written(key="k", revision=2)
    assert log.machine.revision == 2


def test_older_seq_is_stale() -> None:
    """A seq below the last applied one is refused with Error("stale_request") and no effect."""
    log = Log()
    log.request("c1", 5, Put(key="k", value=1))
    stale = log.request("c1", 4, Put(key="k", value=2))
    assert isinstance(stale, Error) and stale.code == "stale_request"
    assert stale.to_json()["error"] == "stale_request"
    assert log.run(Get(key="k")) == Value(key="k", value=1, revision=2, create_revision=2)


def test_seq_gaps_are_allowed() -> None:
    """Clients may skip seqs; any larger seq is a new request."""
    log = Log()
    log.request("c1", 1, Put(key="k", value=1))
    assert log.request("c1", 10, Put(key="k", value=2)) == Written(key="k", revision=3)


def test_clients_are_independent() -> None:
    """Sessions are per client id: equal seqs of different clients are different requests."""
    log = Log()
    log.request("c1", 1, Put(key="k", value=1))
    assert log.request("c2", 1, Put(key="k", value=2)) == Written(key="k", revision=3)


def test_bare_ops_are_not_deduplicated() -> None:
    """Without a Request envelope there is no identity: the same write applies each time."""
    log = Log()
    log.run(Put(key="k", value=1))
    log.run(Put(key="k", value=1))
    assert log.machine.revision == 3


def test_error_answers_are_cached_too() -> None:
    """A retried request that failed fails identically (its answer is what is cached)."""
    log = Log()
    log.run(LockAcquire(name="L", owner="o1", ttl_ms=1000))
    first = log.request("c2", 1, LockRefresh(name="L", owner="o2", ttl_ms=1000))
    assert isinstance(first, Error) and first.code == "not_holder"
    assert log.request("c2", 1, LockRefresh(name="L", owner="o2", ttl_ms=1000)) == first


def test_table_is_bounded_and_evicts_least_recently_used() -> None:
    """Beyond clients_max sessions the least recently used is evicted (and loses dedup)."""
    log = Log(clients_max=2)
    log.request("c1", 1, Put(key="k", value=1))
    log.request("c2", 1, Put(key="k", value=2))
    log.request("c1", 1, Put(key="k", value=1))  # a retry touches c1: c2 is now oldest
    log.request("c3", 1, Put(key="k", value=3))  # evicts c2
    assert log.machine.sessions == 2
    assert log.request("c1", 1, Put(key="k", value=1)) == Written(key="k", revision=2)
    # c2 was evicted: its retry is indistinguishable from a new request and applies again.
    assert log.request("c2", 1, Put(key="k", value=2)) == Written(key="k", revision=5)


def test_stale_request_does_not_count_as_activity() -> None:
    """Stale requests change nothing at all, not even session recency."""
    log = Log(clients_max=2)
    log.request("c1", 5, Put(key="k", value=1))
    log.request("c2", 1, Put(key="k", value=2))
    log.request("c1", 1, Put(key="k", value=9))  # stale: c1 stays the oldest
    log.request("c3", 1, Put(key="k", value=3))  # evicts c1
    assert log.request("c1", 5, Put(key="k", value=1)) == Written(key="k", revision=5)


def test_sessions_survive_snapshots() -> None:
    """The dedup table is part of the snapshot: a retry after restore is still deduplicated."""
    log = Log()
    first = log.request("c1", 1, Put(key="k", value="v"))
    restored = Log(StateMachine.restore(log.machine.snapshot()))
    assert restored.request("c1", 1, Put(key="k", value="v")) == first
    assert restored.machine.revision == 2


def test_anonymous_requests_keep_no_session() -> None:
    """Client ids starting with "~" are applied without a session: a node uses them for
    requests nobody will retry, so they never evict the sessions of clients that do."""
    from paxosd.service import Get, Put, Request, StateMachine, encode

    machine = StateMachine(clients_max=2)
    request = Request(client_id="real", seq=1, op=Put(key="a", value=1))
    first, _ = machine.apply(1, encode(request))
    for slot in range(2, 10):
        anonymous = Request(client_id=f"~anon{slot}", seq=1, op=Put(key="b", value=slot))
        machine.apply(slot, encode(anonymous))
    assert machine.sessions == 1
    revision = machine.revision
    retry, _ = machine.apply(10, encode(request))  # recognised as a retry: not applied again
    assert retry == first and machine.revision == revision
    found = machine.read(Get(key="a"))
    assert getattr(found, "value", None) == 1


def test_a_seq_reused_for_a_different_request_is_refused() -> None:
    """The same (client id, seq) on another operation is a client bug (or two processes
    sharing an id): it is refused with request_mismatch and nothing is applied. Answering with
    the first request's cached result would claim an operation ran that never did."""
    from paxosd.service import (
        Error,
        Get,
        LockAcquire,
        NameLookup,
        NameRegister,
        Put,
        Request,
        StateMachine,
        encode,
    )

    machine = StateMachine()
    first, request = machine.apply(
        1, encode(Request(client_id="c", seq=1, op=Put(key="a", value=1)))
    )
    assert request == ("c", 1)
    for slot, op in enumerate(
        [
            LockAcquire(name="a", owner="o", ttl_ms=1000),
            NameRegister(name="n", owner="o"),
            Put(key="b", value=2),
            Put(key="a", value=True),  # JSON true is not 1
        ],
        start=2,
    ):
        answer, _ = machine.apply(slot, encode(Request(client_id="c", seq=1, op=op)))
        assert isinstance(answer, Error) and answer.code == "request_mismatch", op
    assert machine.read(Get(key="b")).to_json()["value"] is None
    assert machine.read(NameLookup(name="n")).to_json()["owner"] is None
    again, _ = machine.apply(9, encode(Request(client_id="c", seq=1, op=Put(key="a", value=1))))
    assert again == first  # the true retry still gets its answer
    restored = StateMachine.restore(machine.snapshot())
    answer, _ = restored.apply(10, encode(Request(client_id="c", seq=1, op=Put(key="z", value=0))))
    assert isinstance(answer, Error) and answer.code == "request_mismatch"
