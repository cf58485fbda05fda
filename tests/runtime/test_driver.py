"""The one driver (runtime/driver.py): what may leave before the sync, what must wait for it,
and the client side (answers after durability, deadlines, re-forwarding). The node process and
the simulator both run this code, so these rules are the shipping code's rules."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.messages import Accept, Accepted, Ack, Heartbeat, Promise
from paxosd.core.multi.ready import Applied, Note
from paxosd.core.multi.replica import Replica
from paxosd.core.types import Envelope
from paxosd.runtime.driver import Driver, DriverOptions
from paxosd.runtime.errors import NotLeader, ServiceError, Unavailable
from paxosd.service import Get, Put, Request, StateMachine, Written, encode
from paxosd.storage import MemoryLog
from paxosd.storage.snapshots import MemorySnapshots


class Recorder:
    """The store, the network, the clock and the host of one driver, logging every call in
    order, with a sync that completes only when the test says so."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.disk = MemoryLog(b"test/node-1")
        self.pending_sync: Callable[[], None] | None = None
        self.now = 0.0
        self.answers: list[tuple[Any, Any]] = []
        self.failures: list[tuple[Any, ServiceError]] = []
        self.notes: list[Note] = []
        self.pending_work: list[tuple[Callable[[], Any], Callable[[Any], None]]] = []

    # LogStore
    def write(self, records: Sequence[Any]) -> None:
        self.log.append(("write", len(records)))
        self.disk.write(records)

    def sync(self, done: Callable[[], None] | None = None) -> None:
        if done is None:  # the LogStore contract (the planted bug's background sync)
            self.disk.sync()
            return
        self.log.append(("sync started", None))
        self.pending_sync = done

    def finish_sync(self) -> None:
        done, self.pending_sync = self.pending_sync, None
        assert done is not None, "no sync in progress"
        self.disk.sync()
        self.log.append(("sync done", None))
        done()

    def settle(self) -> None:
        """Let a sync in progress (if the turn had records) complete."""
        if self.pending_sync is not None:
            self.finish_sync()

    def load(self) -> Any:
        return self.disk.load()

    def close(self) -> None:
        pass

    def disk_bytes(self) -> int:
        return self.disk.disk_bytes()

    @property
    def snapshots(self) -> MemorySnapshots:
        return self.disk.snapshots

    # PeerSink
    def send(self, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            self.log.append(("send", envelope.msg))

    # Clock
    def monotonic_ms(self) -> float:
        return self.now

    def wall_ms(self) -> float:
        return 1.8e12 + self.now

    # Host
    def schedule_turn(self) -> None:
        self.log.append(("turn wanted", None))

    def answer(self, token: Any, result: Any) -> None:
        self.log.append(("answer", token))
        self.answers.append((token, result))

    def fail(self, token: Any, error: ServiceError) -> None:
        self.failures.append((token, error))

    def event(self, event: Note) -> None:
        self.notes.append(event)

    def applied(self, entry: Applied) -> None:
        pass

    def background(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.log.append(("background", None))
        self.pending_work.append((work, done))

    def finish_work(self) -> None:
        """Run the background work waiting (a snapshot write or restore), then report it."""
        waiting, self.pending_work = self.pending_work, []
        for work, done in waiting:
            try:
                result = work()
            except Exception as error:
                result = error
            self.log.append(("background done", None))
            done(result)

    # helpers
    def sent(self) -> list[Any]:
        return [item for kind, item in self.log if kind == "send"]

    def before_sync_done(self) -> list[tuple[str, Any]]:
        done = [i for i, (kind, _) in enumerate(self.log) if kind == "sync done"]
        return self.log[: done[-1]] if done else list(self.log)


def make(node: int = 1, variant: str = "correct", **config: Any) -> tuple[Driver, Recorder]:
    io = Recorder()
    replica = Replica(
        node, Configuration((1, 2, 3)), random.Random(1), EngineConfig(**config), StateMachine()
    )
    options = DriverOptions(request_timeout_ms=1000, variant=variant, restore=StateMachine.restore)
    return Driver(replica, io, io, io, io, options), io  # type: ignore[arg-type]


def lead(driver: Driver, io: Recorder) -> Any:
    """Make node 1 leader by hand (its own phase 1, the others' promises)."""
    while driver.replica.campaign is None:
        driver.tick()
        for envelope in driver.replica.ready().send_after_sync:  # PreVotes: grant them
            if type(envelope.msg).__name__ == "PreVote":
                from paxosd.core.multi.messages import PreVoteReply

                driver.deliver(envelope.dst, PreVoteReply(ballot=envelope.msg.ballot, granted=True))
    campaign = driver.replica.campaign
    assert campaign is not None
    ballot = campaign.ballot
    driver.deliver(2, Promise(ballot=ballot, accepted=(), snapshot_slot=0, commit=0))
    driver.end_turn()
    io.settle()
    assert driver.status.is_leader
    for accept in [m for m in io.sent() if isinstance(m, Accept)]:  # the leader's no-op
        driver.deliver(2, Accepted(ballot=ballot, slot=accept.slot))
    driver.end_turn()
    io.settle()
    assert driver.replica.status().chosen_upto >= 1
    io.log.clear()
    return ballot


def put(key: str, value: Any, seq: int) -> tuple[tuple[str, int], bytes]:
    return ("c", seq), encode(Request(client_id="c", seq=seq, op=Put(key=key, value=value)))


def test_a_vote_never_leaves_before_the_sync_returns() -> None:
    """A follower's Accepted (and every reply) waits for its turn's fsync: sent before, a
    crash could make it forget a vote a quorum already counted."""
    driver, io = make(node=2)
    from paxosd.core.types import Ballot

    ballot = Ballot(1, 1)
    driver.deliver(1, Heartbeat(ballot=ballot, commit=0, read_round=1))
    driver.deliver(1, Accept(ballot=ballot, slot=1, batch=(b"x",), commit=0))
    driver.end_turn()
    assert io.pending_sync is not None, "the turn's records must be synced"
    assert io.sent() == [], "nothing of a follower's turn may leave before its sync"
    io.finish_sync()
    kinds = [type(m).__name__ for m in io.sent()]
    assert kinds == ["Ack", "Accepted"]
    assert all(kind != "send" for kind, _ in io.before_sync_done())


def test_only_the_leaders_accepts_leave_early_and_answers_wait_for_the_sync() -> None:
    driver, io = make()
    ballot = lead(driver, io)
    key, payload = put("x", 1, seq=1)
    driver.submit_write(key, payload, "client-1", retry_safe=True)
    driver.end_turn()
    early = [m for m in io.sent()]
    assert early and all(isinstance(m, Accept) for m in early)  # overlapping the leader's sync
    io.finish_sync()
    slot = early[0].slot
    driver.deliver(2, Accepted(ballot=ballot, slot=slot))
    driver.end_turn()  # chosen now; the answer waits for this turn's sync, if it has one
    if io.pending_sync is not None:
        assert io.answers == []
        io.finish_sync()
    assert io.answers == [("client-1", Written(key="x", revision=2))]  # the first write is 2


def test_early_accepts_carry_only_a_commit_point_an_earlier_sync_confirmed() -> None:
    driver, io = make()
    ballot = lead(driver, io)
    for seq in (1, 2):
        key, payload = put("x", seq, seq=seq)
        driver.submit_write(key, payload, f"c{seq}", retry_safe=True)
        driver.end_turn()
        io.finish_sync()
    accepts = [m for m in io.sent() if isinstance(m, Accept)]
    first, second = accepts[0], accepts[-1]
    driver.deliver(2, Accepted(ballot=ballot, slot=first.slot))
    driver.deliver(2, Accepted(ballot=ballot, slot=second.slot))
    key, payload = put("y", 3, seq=3)
    driver.submit_write(key, payload, "c3", retry_safe=True)
    io.log.clear()
    driver.end_turn()  # chose slots in this very turn: its early Accept may not say so yet
    third = next(m for m in io.sent() if isinstance(m, Accept))
    assert third.commit < second.slot
    io.finish_sync()
    key, payload = put("z", 4, seq=4)
    driver.submit_write(key, payload, "c4", retry_safe=True)
    io.log.clear()
    driver.end_turn()
    fourth = next(m for m in io.sent() if isinstance(m, Accept))
    assert fourth.commit >= second.slot  # now synced: it may


def test_the_planted_bug_sends_before_the_sync() -> None:
    """The reply-before-fsync variant is exactly the mistake the first test guards against."""
    driver, io = make(node=2, variant="reply-before-fsync")
    from paxosd.core.types import Ballot

    driver.deliver(1, Accept(ballot=Ballot(1, 1), slot=1, batch=(b"x",), commit=0))
    driver.end_turn()
    assert any(isinstance(m, Accepted) for m in io.sent()) and io.pending_sync is None


def test_a_write_that_never_reached_a_leader_fails_definitely_one_that_did_is_unknown() -> None:
    driver, io = make(node=2)
    key, payload = put("x", 1, seq=1)
    driver.submit_write(key, payload, "orphan", retry_safe=True)  # no leader known
    io.now = 2000
    driver.tick()
    (token, error), *_ = io.failures
    assert token == "orphan" and isinstance(error, NotLeader) and error.outcome == "failed"
    driver2, io2 = make()
    lead(driver2, io2)
    key, payload = put("x", 1, seq=1)
    driver2.submit_write(key, payload, "proposed", retry_safe=True)
    driver2.end_turn()
    io2.finish_sync()
    io2.now = 2000
    driver2.tick()
    (token, error), *_ = io2.failures
    assert token == "proposed" and isinstance(error, Unavailable) and error.outcome == "unknown"


def test_a_write_with_a_session_follows_a_new_leader_one_without_does_not() -> None:
    """A follower forwarded two writes to leader 1, which died; when node 3 leads, the write
    with an exactly-once session is forwarded again (safe: applied at most once), the
    anonymous one is not (it could apply twice)."""
    from paxosd.core.types import Ballot

    driver, io = make(node=2)
    driver.deliver(1, Heartbeat(ballot=Ballot(1, 1), commit=0, read_round=1))
    session_key, session_payload = put("a", 1, seq=1)
    driver.submit_write(session_key, session_payload, "session", retry_safe=True)
    driver.submit_write(("~anon", 1), encode(Put(key="b", value=2)), "anon", retry_safe=False)
    driver.end_turn()
    io.settle()
    io.log.clear()
    driver.deliver(3, Heartbeat(ballot=Ballot(2, 3), commit=0, read_round=1))
    driver.tick()
    driver.end_turn()
    io.settle()
    forwards = [m for m in io.sent() if type(m).__name__ == "Forward"]
    assert [c for f in forwards for c in f.commands] == [session_payload]
    assert driver.stats.reforwarded_writes == 1


def test_a_read_is_answered_through_the_replica_never_from_the_driver() -> None:
    driver, io = make()
    ballot = lead(driver, io)
    driver.submit_read(Get(key="x"), "reader")
    driver.end_turn()
    beats = [m for m in io.sent() if isinstance(m, Heartbeat)]
    driver.deliver(2, Ack(ballot=ballot, read_round=beats[-1].read_round, applied=0))
    driver.end_turn()
    io.settle()
    assert [token for token, _ in io.answers] == ["reader"]
