"""Simulated clients: one operation at a time, retried under the same request id, recorded.

Theory of operation. A client invokes an operation (put, get, cas, delete, lock acquire / use
/ release, name registration and lookup, decision proposals and reads), sends it to the node
it last heard from, and waits. A node that cannot serve it says so (and names the leader if
it knows one): the client tries again, under the SAME request id (client id, seq), at that
leader or anywhere. A client that hears nothing in time retries too. While faults last it gives
up after a few attempts and records the outcome as unknown ("info"); once they stop it keeps
trying, and must get through (the liveness check). Every operation is recorded as invoke, then
ok, fail (certainly did not happen) or info (unknown), for the checkers.

Two behaviours exist to exercise rules a well-behaved client never tests:

- Reused sequence numbers. After a write was applied, a client sometimes sends a DIFFERENT
  write under the same seq, as a buggy client would. The state machine must refuse it (its
  exactly-once table compares the request's digest), and the client records it as failed. If
  it were answered, the answer would be the earlier request's: the run's exactly-once check
  (`Cluster.check_answers`) compares every answered request with what was applied under its id.
- Twin requests. Now and then a client sends, right after a write, a second write under the
  same seq while the first is still in flight (another thread of a buggy client): each must
  be refused or applied as itself, never handed the other's answer.
- Reading back. A client whose write succeeded sometimes reads the same object next, at
  another node than the one that answered: a follower that answered from its own state, or
  took a refusal for a confirmation, would show it the state before its write. While a leader
  is cut off from its peers or paused (the `stale-leader` fault), clients write at the new
  leader and read back at the old one: the classic stale read, which only a leader that
  confirms its leadership with a quorum before answering avoids.
"""

from __future__ import annotations

import hashlib
import random
from functools import partial
from typing import TYPE_CHECKING, Any

from paxosd.check.history import OpType
from paxosd.core.types import NodeId
from paxosd.service import (
    DecisionGet,
    DecisionPropose,
    LockAcquire,
    LockRelease,
    NameLookup,
    NameRegister,
    Request,
    encode,
)
from paxosd.service.commands import is_read
from paxosd.service.kv import (
    Compare,
    CompareTarget,
    DeleteRange,
    KvError,
    Put,
    Range,
    RangeResponse,
    Txn,
    TxnResponse,
)
from paxosd.service.results import (
    REQUEST_MISMATCH,
    STALE_REQUEST,
    DecisionResult,
    Error,
    LockResult,
    NameResult,
    Released,
)
from paxosd.service.values import from_json_text, json_text
from paxosd.sim.membership import removed
from paxosd.sim.mvcc_workload import MvccClient
from paxosd.sim.sql_workload import SQL_KEY, SqlClient

if TYPE_CHECKING:
    from paxosd.sim.cluster import Cluster

client_timeout_ms = 400.0
client_attempts_max = 6
lock_ttl_ms = 300
# The mvcc workload's lease operations stop this long before clients stop (mvcc_workload.py).
lease_quiet_ms = 1500.0
# After a write that was applied, the next request reuses its seq for a different write this
# often (a buggy client; the state machine must refuse it).
seq_reuse_odds = 0.04
# After a write that succeeded, the next operation reads it back elsewhere this often (always
# while a leader is stale).
read_back_odds = 0.25
twin_odds = 0.03  # a write's first attempt is followed by a twin under the same seq
REDIRECT = object()  # "not here: try the leader" (the node names it when it knows)
# The key the mvcc workload's operations are recorded under (they touch many keys).
MVCC_KEY = "mvcc"
REFUSED = object()  # the node refused the request itself (a bad request): it did not happen


def digest(payload: bytes) -> bytes:
    """What identifies a request's body, for the exactly-once check."""
    return hashlib.blake2b(payload, digest_size=8).digest()


class SimClient:
    """A client that runs one operation at a time and records everything it sees."""

    def __init__(self, cluster: Cluster, number: int) -> None:
        self.cluster = cluster
        self.name = f"c{number}"
        self.number = number
        self.rng = random.Random(cluster.rng.random())
        self.seq = 0
        self.attempt = 0  # never reset: a late answer must not pass for a newer attempt's
        self.tries = 0  # attempts at the current operation
        self.current: tuple[str, Any, Any, Request] | None = None  # f, key, input, request
        self.target: NodeId = cluster.members[number % len(cluster.members)]
        self.deadline = 0.0
        self.holding: dict[str, int] = {}  # lock name -> token
        self.done = 0
        self.applied_seq: int | None = None  # the seq of the last write known applied
        self.reusing = False  # the current request reuses `applied_seq` for another write
        self.read_back: tuple[str, Any, Any, Any] | None = None  # the next op: read a write
        self.reading_back = False  # the current op is such a read
        self.read_back_at: NodeId = self.target  # ... and where it goes
        self.mvcc = MvccClient(self.name, cluster.spec.keys + 1, self.rng)
        # A generator of its own, so that the sql workload changes no other workload's draws.
        self.sql = SqlClient(
            self.name,
            random.Random(f"sql-{cluster.seed}-{self.name}"),
            unrewritten=cluster.variant.name == "sql-random-unrewritten",
            append_rng=random.Random(f"sql-append-{cluster.seed}-{self.name}"),
        )

    def start(self) -> None:
        if self.cluster.now >= self.cluster.stop_at or self.current is not None:
            return
        rng = self.rng
        if self.applied_seq is not None and rng.random() < seq_reuse_odds:
            # A buggy client: a different write under the seq of one that was applied.
            key = f"k{rng.randrange(self.cluster.spec.keys)}"
            value = 10 + rng.randrange(10)  # no earlier put wrote it: it differs
            f, op = "put", Put(key=key.encode(), value=json_text(value))
            request = Request(client_id=self.name, seq=self.applied_seq, op=op)
            self.target = rng.choice(self.cluster.members)  # it could come from anywhere
            self.reusing = True
            self.cluster.count_mechanism("seq_reuses")
        else:
            self.seq += 1
            self.reading_back = self.read_back is not None
            f, key, value, op = self.read_back or self._choose()
            request = Request(client_id=self.name, seq=self.seq, op=op)
            self.reusing = False
        self.applied_seq = None
        self.read_back = None
        self.current = (f, key, value, request)
        self.tries = 0
        self.cluster.log(self.name, OpType.INVOKE, f, key, value)
        if key == MVCC_KEY:
            self.cluster.mvcc_invoked(self.name, request, is_read(request.op))
        elif key == SQL_KEY:
            self.cluster.sql_invoked(self.name, request, f.removeprefix("sql-"))
        if f == "mvcc-lease-leader":
            # The question "do I lead?" is a grant of the lock "election" when the answer
            # is yes (mvcc_workload.py): recorded under a process of its own.
            self.cluster.log(f"{self.name}-el", OpType.INVOKE, "acquire", "election", None)
        self._send()

    def _choose(self) -> tuple[str, Any, Any, Any]:
        rng, spec = self.rng, self.cluster.spec
        workload = rng.choice(spec.workloads)
        key = f"k{rng.randrange(spec.keys)}"
        if workload == "mvcc":
            self.mvcc.lease_ops = self.cluster.now < self.cluster.stop_at - lease_quiet_ms
            kind, op = self.mvcc.choose(self.seq)
            return f"mvcc-{kind}", MVCC_KEY, None, op
        if workload == "sql":
            kind, op = self.sql.choose(self.cluster.now)
            return f"sql-{kind}", SQL_KEY, None, op
        if workload == "sql-append":
            kind, op = self.sql.choose_append()
            return f"sql-{kind}", SQL_KEY, None, op
        if workload == "kv":
            # The register of each key, on etcd's model: values are JSON text, a get is a
            # range of one key, a cas a transaction comparing the value.
            kind = rng.choice(("put", "get", "cas", "delete", "get", "put"))
            value = rng.randrange(10)
            data = key.encode()
            if kind == "put":
                return "put", key, value, Put(key=data, value=json_text(value))
            if kind == "get":
                return "get", key, None, Range(key=data)
            if kind == "delete":
                return "delete", key, None, DeleteRange(key=data)
            expected = rng.randrange(10)
            compare = Compare(key=data, target=CompareTarget.VALUE, value=json_text(expected))
            swap = Txn(compare=(compare,), success=(Put(key=data, value=json_text(value)),))
            return "cas", key, (expected, value), swap
        if workload == "locks":
            name = f"lock{rng.randrange(2)}"
            if name in self.holding:  # release first: re-acquiring would refresh, not grant
                return "release", name, self.holding[name], LockRelease(name=name, owner=self.name)
            owner = {"owner": self.name, "lease_s": lock_ttl_ms / 1000}
            return (
                "acquire",
                name,
                owner,
                LockAcquire(name=name, owner=self.name, ttl_ms=lock_ttl_ms),
            )
        if workload == "names":
            name = f"user{rng.randrange(3)}"
            if rng.random() < 0.3:
                return "lookup", name, None, NameLookup(name=name)
            return "register", name, self.name, NameRegister(name=name, owner=self.name)
        decision = f"d{rng.randrange(3)}"
        if rng.random() < 0.3:
            return "get", f"decision:{decision}", None, DecisionGet(id=decision)
        proposal = f"{self.name}-{self.seq}"
        return (
            "propose",
            f"decision:{decision}",
            proposal,
            DecisionPropose(id=decision, value=proposal),
        )

    def _send(self) -> None:
        assert self.current is not None
        self.attempt += 1
        self.tries += 1
        attempt, request = self.attempt, self.current[3]
        target = self._route(request)
        self.cluster.send_request(target, partial(_request, self, request, attempt), request)
        # A twin may take the seq first and get the original refused: not for the mvcc
        # workload's operations, whose checker expects each of them applied or unknown.
        plain = not is_read(request.op) and not self.current[0].startswith(("mvcc-", "sql-"))
        if plain and self.tries == 1 and not self.reusing and self.rng.random() < twin_odds:
            TwinRequest(self, request.seq, target)
        self.cluster.at(self.cluster.now + client_timeout_ms, partial(self._timeout, attempt))

    def _route(self, request: Request) -> NodeId:
        """Where this attempt goes: where the client last heard from, except while a leader is
        stale: then writes go to the new leader, and the read of a write just made goes to
        the stale one (other reads go as usual, so clients are not all left waiting there);
        and while nodes run with a wrong config, half the attempts go to them."""
        misconfigured = self.cluster.misconfigured
        if misconfigured and self.rng.random() < 0.5:
            # Clients of the nodes an operator restarted with a wrong config talk to them.
            return self.rng.choice(sorted(misconfigured))
        stale = self.cluster.stale_leader
        if self.reading_back:
            if removed(self.cluster, self.read_back_at):  # it serves no one now: ask around
                self.read_back_at = self.target
            return stale if stale is not None else self.read_back_at
        if stale is not None and not is_read(request.op):
            return next((n for n in self.cluster.leaders() if n != stale), self.target)
        return self.target

    def _timeout(self, attempt: int) -> None:
        if self.current is not None and attempt == self.attempt:
            self._retry(None)

    def _retry(self, hint: NodeId | None) -> None:
        """Try again, under the same request id, at the leader we were told of or anywhere.
        While faults last a client gives up after a few attempts, with an unknown outcome;
        once they stop it keeps trying, and must get through (the liveness check)."""
        assert self.current is not None
        if self.tries >= client_attempts_max and self.cluster.now < self.cluster.heal_at:
            f, key, _, _ = self.current
            self.cluster.log(self.name, OpType.INFO, f, key, None)
            if key == MVCC_KEY:
                self.mvcc.gave_up(f.removeprefix("mvcc-"))
                self._election_answered(f, OpType.INFO)
            elif key == SQL_KEY:
                self.sql.gave_up(f.removeprefix("sql-"))
            self._finish()
            return
        self.target = hint if hint is not None else self.rng.choice(self.cluster.members)
        expected = self.attempt
        self.cluster.at(self.cluster.now + self.rng.uniform(5, 30), partial(self._resend, expected))

    def _resend(self, expected: int) -> None:
        if self.current is not None and self.attempt == expected:
            self._send()

    def answer(self, attempt: int, result: Any, node: NodeId | None) -> None:
        if self.current is None or attempt != self.attempt:
            return  # a late answer to an earlier attempt; the retry will get the same one
        if result is REDIRECT:  # not done by this attempt, or not known: retry, same request id
            self._retry(node)
            return
        assert node is not None
        f, key, value, request = self.current
        self.target = node
        if result is REFUSED:
            self._refused(f, key)
            return
        if is_read(request.op):
            self.cluster.count_mechanism("reads_confirmed")
        else:
            self._answered_write(request, result)
        if key == MVCC_KEY:
            self.cluster.mvcc_completed(self.name, request.seq, result)
            self.mvcc.answered(f.removeprefix("mvcc-"), request.op, result)
            self._election_answered(f, OpType.OK, node)
        elif key == SQL_KEY:
            self.cluster.sql_completed(self.name, request.seq, result)
            self.sql.answered(f.removeprefix("sql-"), result, request.op)
        outcome, output = self._outcome(f, value, result)
        self.cluster.log(self.name, outcome, f, key, output, node)
        pause_ms = self.rng.uniform(1, 20)
        if f == "acquire" and outcome == OpType.OK and isinstance(result, LockResult):
            self.holding[key] = output["token"]
            self._use(key, output["token"])
            if self.rng.random() < 0.5:
                # Work under the lock, sometimes past the lease (a holder that overruns):
                # only the fencing token protects the resource then.
                pause_ms = self.rng.uniform(0, 1.5 * lock_ttl_ms)
        if f == "release":
            self.holding.pop(key, None)
        if outcome == OpType.OK and (
            self.cluster.stale_leader is not None or self.rng.random() < read_back_odds
        ):
            self.read_back = _read_of(request.op, key)
            others = [n for n in self.cluster.members if n != node]
            self.read_back_at = self.rng.choice(others) if others else node
        self._finish(pause_ms)

    def _answered_write(self, request: Request, result: Any) -> None:
        """A write's answer: the state machine's word that `request` was applied (unless it is
        an Error, which says nothing was). The run checks it against what was applied."""
        if isinstance(result, Error):
            if self.reusing and result.code == REQUEST_MISMATCH:
                self.cluster.count_mechanism("seq_reuses_refused")
            return
        self.cluster.answered(self.name, request.seq, digest(encode(request)))
        if not self.reusing:
            self.applied_seq = request.seq

    def _refused(self, f: str, key: Any) -> None:
        if self.reusing:
            self.cluster.count_mechanism("seq_reuses_refused")
        if key == MVCC_KEY and self.current is not None:
            self.cluster.mvcc_refused(self.name, self.current[3].seq)
            self.mvcc.gave_up(f.removeprefix("mvcc-"))
            self._election_answered(f, OpType.FAIL)
        if key == SQL_KEY and self.current is not None:
            self.cluster.sql_refused(self.name, self.current[3].seq)
            self.sql.gave_up(f.removeprefix("sql-"))
        self.cluster.log(self.name, OpType.FAIL, f, key, None)
        self._finish()

    def _election_answered(self, f: str, outcome: OpType, node: NodeId | None = None) -> None:
        """The end of an election's "do I lead?" (recorded as a grant of the lock
        "election"): a leader acts on the fenced resource with its token."""
        if f != "mvcc-lease-leader":
            return
        process, token = f"{self.name}-el", self.mvcc.leads
        if outcome is not OpType.OK or token is None:
            missed = OpType.INFO if outcome is OpType.INFO else OpType.FAIL
            self.cluster.log(process, missed, "acquire", "election", None)
            return
        grant = {"token": token, "owner": process}
        self.cluster.log(process, OpType.OK, "acquire", "election", grant, node)
        self.cluster.count_mechanism("mvcc_leaderships")
        self.cluster.log(process, OpType.INVOKE, "use", "election", token)
        accepted = self.cluster.resource_use("election", token)
        self.cluster.log(process, OpType.OK if accepted else OpType.FAIL, "use", "election", token)

    def _use(self, lock: str, token: int) -> None:
        """Act on the protected resource with the fencing token (the resource checks it)."""
        self.cluster.log(self.name, OpType.INVOKE, "use", lock, token)
        accepted = self.cluster.resource_use(lock, token)
        self.cluster.log(self.name, OpType.OK if accepted else OpType.FAIL, "use", lock, token)

    def _outcome(self, f: str, value: Any, result: Any) -> tuple[OpType, Any]:
        if isinstance(result, Error | KvError):
            return OpType.FAIL, None
        if f.startswith("mvcc-"):
            return OpType.OK, getattr(result, "revision", None)  # judged by check.mvcc
        if f.startswith("sql-"):
            return OpType.OK, getattr(result, "revision", None)  # judged by check.sql
        match result:
            case RangeResponse(kvs=kvs):
                if not kvs:
                    return OpType.OK, None
                _, stored = from_json_text(kvs[0].value)
                return OpType.OK, stored
            case TxnResponse(succeeded=succeeded):
                return (OpType.OK if succeeded else OpType.FAIL), value
            case LockResult(acquired=acquired, fencing_token=token):
                if not acquired:
                    return OpType.FAIL, None
                return OpType.OK, {
                    "token": token,
                    "owner": self.name,
                    "lease_s": lock_ttl_ms / 1000,
                }
            case Released(released=released):
                return (OpType.OK if released else OpType.FAIL), value
            case NameResult(owner=owner):
                return OpType.OK, owner
            case DecisionResult(chosen=chosen):
                return OpType.OK, chosen
        return OpType.OK, value  # put, delete: the input is the record

    def _finish(self, pause_ms: float | None = None) -> None:
        self.current = None
        self.done += 1
        pause_ms = self.rng.uniform(1, 20) if pause_ms is None else pause_ms
        self.cluster.at(self.cluster.now + pause_ms, self.start)


class TwinRequest:
    """A second write under the seq of one still in flight, sent by another thread of a buggy
    client, recorded as a process of its own. The node must refuse it (or apply it as itself,
    if it gets there first and the other is refused); handing it the other request's answer
    would claim it was applied."""

    def __init__(self, client: SimClient, seq: int, target: NodeId) -> None:
        cluster = self.cluster = client.cluster
        self.name = f"{client.name}-twin{seq}"
        self.key = f"k{client.rng.randrange(cluster.spec.keys)}"
        self.value = 20 + client.rng.randrange(10)  # no other put writes it
        self.request = Request(
            client_id=client.name,
            seq=seq,
            op=Put(key=self.key.encode(), value=json_text(self.value)),
        )
        self.done = False
        cluster.count_mechanism("seq_twins")
        cluster.log(self.name, OpType.INVOKE, "put", self.key, self.value)
        cluster.send_request(target, partial(_request, self, self.request, 1), self.request)
        cluster.at(cluster.now + client_timeout_ms, partial(self.answer, 1, REDIRECT, None))

    def answer(self, attempt: int, result: Any, node: NodeId | None) -> None:
        if self.done:
            return
        self.done = True
        cluster = self.cluster
        if result is REDIRECT:  # not known to be done, nor known not to be: unknown
            cluster.log(self.name, OpType.INFO, "put", self.key, None)
            return
        if isinstance(result, Error) and result.code == STALE_REQUEST:
            # Not applied now, because the client's later seq was; an earlier copy of this
            # one may have been (a node that passed it on again after an epoch change, having
            # installed a snapshot past its slot): unknown, as the RESP API answers it.
            cluster.log(self.name, OpType.INFO, "put", self.key, None)
            return
        if result is REFUSED or isinstance(result, Error):
            if result is REFUSED or getattr(result, "code", None) == REQUEST_MISMATCH:
                cluster.count_mechanism("seq_reuses_refused")
            cluster.log(self.name, OpType.FAIL, "put", self.key, None, node)
            return
        cluster.answered(self.request.client_id, self.request.seq, digest(encode(self.request)))
        cluster.log(self.name, OpType.OK, "put", self.key, self.value, node)


def _read_of(op: Any, key: Any) -> tuple[str, Any, Any, Any] | None:
    """The read that observes what the write `op` (recorded under `key`) did, if any."""
    if key in (MVCC_KEY, SQL_KEY):
        return None
    match op:
        case Put(key=name) | DeleteRange(key=name):
            return "get", key, None, Range(key=name)
        case Txn(success=(Put(key=name),)):
            return "get", key, None, Range(key=name)
        case NameRegister(name=name):
            return "lookup", key, None, NameLookup(name=name)
        case DecisionPropose(id=decision):
            return "get", key, None, DecisionGet(id=decision)
    return None


def _request(client: SimClient | TwinRequest, request: Request, attempt: int, node: Any) -> None:
    node.request(client, request, attempt)
