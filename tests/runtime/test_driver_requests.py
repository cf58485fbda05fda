"""The driver's client side keeps two promises the simulator's swarm found broken:

- a request id names ONE request: a second request under an id that is in flight with another
  body is refused, and an applied command answers only the request it is (a client that
  reused its seq must never be handed another request's answer, as if its own was applied);
- the idle leader's log time is proposed in the turn that batches it, never left queued: a
  leader that stepped down would forward it to the next leader, whose log time runs behind,
  and end its leases early.
"""

from __future__ import annotations

import itertools

from paxosd.core.multi.messages import Accept, Accepted, Commit, Forward, Heartbeat
from paxosd.core.types import Ballot
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import BadRequest
from paxosd.service import AdvanceTime, LockAcquire, Put, Request, decode, encode
from paxosd.service.results import REQUEST_MISMATCH, Error
from tests.runtime.test_driver import Recorder, lead, make


def request(seq: int, op: object) -> tuple[tuple[str, int], bytes]:
    return ("c", seq), encode(Request(client_id="c", seq=seq, op=op))


def test_a_request_id_in_flight_with_another_body_is_refused() -> None:
    driver, io = make()
    lead(driver, io)
    key, first = request(1, Put(key="x", value=1))
    _, second = request(1, Put(key="x", value=2))
    driver.submit_write(key, first, "first", retry_safe=True)
    driver.submit_write(key, first, "retry", retry_safe=True)  # the same request: joins
    driver.submit_write(key, second, "reused", retry_safe=True)
    assert [(token, type(error)) for token, error in io.failures] == [("reused", BadRequest)]
    assert "use a new seq" in str(io.failures[0][1])


def test_an_applied_command_answers_only_the_request_it_is() -> None:
    """A follower holds a request under (c, 1) while the command the client first sent under
    that id is applied: the held request is not answered with that command's answer; its
    own entry answers it later (the state machine refuses it)."""
    driver, io = make(node=2)
    leader = Ballot(1, 1)
    driver.deliver(1, Heartbeat(ballot=leader, commit=0, read_round=1))
    key, first = request(1, LockAcquire(name="l", owner="c", ttl_ms=1000))
    _, reused = request(1, Put(key="x", value=2))
    driver.submit_write(key, reused, "reused", retry_safe=True)
    driver.end_turn()
    io.settle()
    driver.deliver(1, Accept(ballot=leader, slot=1, batch=(first,), commit=0))
    driver.deliver(1, Commit(ballot=leader, commit=1))
    driver.end_turn()
    io.settle()
    assert io.answers == [], "the lock's answer was handed to another request"
    driver.deliver(1, Accept(ballot=leader, slot=2, batch=(reused,), commit=1))
    driver.deliver(1, Commit(ballot=leader, commit=2))
    driver.end_turn()
    io.settle()
    [(token, answer)] = io.answers
    assert token == "reused" and isinstance(answer, Error) and answer.code == REQUEST_MISMATCH


def _with_log_time() -> tuple[Driver, Recorder]:
    driver, io = make()
    options = DriverOptions(
        request_timeout_ms=1000,
        time_advance_ms=50,
        time_command=lambda now_ms: encode(AdvanceTime(now_ms=now_ms)),
    )
    driver = Driver(driver.replica, io, io, io, io, options)
    return driver, io


def _lease_granted(driver: Driver, io: Recorder, ballot: Ballot) -> None:
    """A lock is granted (chosen and applied): from now on log time must keep moving."""
    key, payload = request(1, LockAcquire(name="l", owner="c", ttl_ms=1000))
    driver.submit_write(key, payload, "locker", retry_safe=True)
    driver.end_turn()
    io.settle()
    for accept in [m for m in io.sent() if isinstance(m, Accept)]:
        driver.deliver(2, Accepted(ballot=ballot, slot=accept.slot))
    driver.end_turn()
    io.settle()
    assert [token for token, _ in io.answers] == ["locker"]
    assert driver.status.wants_log_time


def test_the_idle_leaders_log_time_is_never_left_queued_for_the_next_leader() -> None:
    driver, io = _with_log_time()
    ballot = lead(driver, io)
    _lease_granted(driver, io, ballot)
    io.now += 100
    driver.tick()  # the idle leader wants to move log time ...
    higher = Ballot(ballot.round + 1, 3)
    driver.deliver(3, Heartbeat(ballot=higher, commit=0, read_round=1))  # ... but is deposed
    driver.end_turn()
    io.settle()
    driver.tick()
    driver.end_turn()
    io.settle()
    forwarded = [c for m in io.sent() if isinstance(m, Forward) for c in m.commands]
    times = [c for c in forwarded if isinstance(decode(c), AdvanceTime)]
    assert times == [], "a deposed leader forwarded its log time to the next leader"
    assert not driver.status.is_leader


def test_the_idle_leader_still_moves_log_time() -> None:
    driver, io = _with_log_time()
    _lease_granted(driver, io, lead(driver, io))
    io.log.clear()
    for _ in range(3):
        io.now += 60
        driver.tick()
        driver.end_turn()
        io.settle()
    batches = {m.slot: m.batch for m in io.sent() if isinstance(m, Accept)}  # one per slot
    stamps = [
        decode(command).now_ms
        for _, batch in sorted(batches.items())
        for command in batch
        if isinstance(decode(command), AdvanceTime)
    ]
    assert len(stamps) == 3 and stamps == sorted(stamps), stamps


def test_log_time_follows_the_monotonic_clock_not_the_wall_clock() -> None:
    """The leader's wall clock jumps ten seconds ahead (NTP, an operator): log time, and with
    it every lease, moves only by what the monotonic clock measured."""
    driver, io = _with_log_time()
    _lease_granted(driver, io, lead(driver, io))
    io.log.clear()
    jumped = io.wall_ms
    for step in range(4):
        if step == 2:
            io.wall_ms = lambda: jumped() + 10_000  # type: ignore[method-assign]
        io.now += 60
        driver.tick()
        driver.end_turn()
        io.settle()
    batches = {m.slot: m.batch for m in io.sent() if isinstance(m, Accept)}
    stamps = [
        decode(command).now_ms
        for _, batch in sorted(batches.items())
        for command in batch
        if isinstance(decode(command), AdvanceTime)
    ]
    steps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert len(stamps) == 4 and all(0 <= step <= 60 for step in steps), stamps


def test_a_removed_node_fails_what_waits_at_it_and_refuses_new_requests_at_once() -> None:
    """A follower passes a write to its leader; then it applies the change that removes it
    (core/multi/epochs.py). It will never hear a leader again: the waiting write fails at its
    next tick, with an unknown outcome (the leader may have it), and a new request is refused
    at once, naming the epoch; neither waits for its deadline."""
    from paxosd.core.multi.configuration import Configuration
    from paxosd.core.multi.reconfigure import Reconfigure
    from paxosd.runtime.errors import NotLeader, Unavailable

    driver, io = make(node=2)
    leader = Ballot(1, 1)
    driver.deliver(1, Heartbeat(ballot=leader, commit=0, read_round=1))
    key, write = request(1, Put(key="x", value=1))
    driver.submit_write(key, write, "waiting", retry_safe=True)
    driver.end_turn()
    io.settle()
    assert [m for m in io.sent() if isinstance(m, Forward)], "passed to the leader"
    change = Reconfigure(Configuration((1, 3), (), 1)).batch()
    driver.deliver(1, Accept(ballot=leader, slot=1, batch=change, commit=0))
    driver.deliver(1, Commit(ballot=leader, commit=1))
    driver.end_turn()
    io.settle()
    assert driver.replica.configuration.voters == (1, 3)
    driver.tick()
    assert [(token, type(error)) for token, error in io.failures] == [("waiting", Unavailable)]
    assert "no member of the cluster since epoch 1" in str(io.failures[0][1])
    _, other = request(2, Put(key="y", value=2))
    driver.submit_write(("c", 2), other, "new", retry_safe=True)
    driver.submit_read(None, "read")
    assert [(t, type(e)) for t, e in io.failures[1:]] == [("new", NotLeader), ("read", NotLeader)]
