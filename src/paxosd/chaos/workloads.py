"""Client workloads for the chaos harness: concurrent clients over the HTTP API, recorded.

Theory of operation. Every client ("process" in Jepsen's words) runs one operation at a time
and records it twice in a shared `Recorder`: an ``invoke`` when it starts, then ``ok`` (it
happened, with what it returned), ``fail`` (it certainly did not happen) or ``info`` (the
outcome is unknown: a write that may have reached a node and got no definite answer). Times
are wall-clock seconds since the run began, the same clock as the nemesis's fault records;
the completion names the node that answered. The events are the history the checkers in
`paxosd.check.workloads` judge, in the key conventions they expect (kv keys start with
``k``, decisions with ``decision:``).

Every client has a home node (round robin over the members, as Jepsen binds clients to
nodes), not the leader. Its reads always go to its home node, which answers them itself (a
follower through a read index from the leader): a read served by a node that wrongly
believes it leads is exactly the bug linearizability catches, and a client homed on a node
that is paused or cut off keeps asking it. Its writes go home too, unless the home node just
failed to answer (`suspect_s`); a write that gets no answer within `attempt_timeout_s` is
tried at another node. A write carries exactly-once headers (one session per client), so
retrying it elsewhere is safe; a redirect (503 not_leader) is followed to the leader it
names. What an
answer means comes from the client library (`paxosd.client.core.judge`), so the harness and
users read answers alike.

Keys, locks, names and decisions are renewed every `epoch_s` seconds. Linearizability is
checked per key, and an operation with an unknown outcome stays "pending" forever in its
key's history; fresh keys keep every key's history short, so the check stays fast however
long the run.

Bank: clients move money between accounts in transactions and audit every account with one
range read; `paxosd.check.bank` judges what must hold at every revision (the total, one
state per revision, no acknowledged write missing).

Locks: a client acquires a lock with a short lease, then acts on a fenced resource with its
token, then releases. Sometimes it stalls between the grant and the use for longer than the
lease (a holder paused by GC or a stopped VM): by then another client may hold the lock with
a newer token, and the resource must refuse the stale one. The resource lives in the harness
(`FencedResource`) and is the one every fencing-token tutorial describes: it accepts a token
at least as high as every token it accepted before.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from paxosd.check.history import Event, OpType
from paxosd.check.workloads import DECISION_PREFIX, NAME_FUNCTIONS, is_kv
from paxosd.client import operations
from paxosd.client.core import Call, judge

log = logging.getLogger("paxosd.chaos.workloads")

WORKLOADS = ("kv", "locks", "names", "decisions")
# Chosen by name only (`--workload bank`), not by "all".
OPTIONAL_WORKLOADS = ("bank", "sql")
CLIENTS_PER_WORKLOAD = {"kv": 6, "locks": 3, "names": 2, "decisions": 2, "bank": 4, "sql": 4}

epoch_s_default = 15.0
kv_keys = 3
bank_accounts = 5
bank_balance = 100  # each account's opening balance
sql_accounts = 4  # the sql workload's accounts (each opens with bank_balance)
locks_per_epoch = 2
names_per_epoch = 2
decisions_per_epoch = 2
think_s = (0.01, 0.05)  # between two operations of one client
attempt_timeout_s = 1.5  # one HTTP attempt; then the client tries another node
operation_deadline_s = 4.0  # give up (fail or info) after this long
retry_pause_s = (0.02, 0.1)
suspect_s = 2.0  # after a node failed to answer, failover avoids it this long
lock_ttl_ms = 1000  # well under the shortest pause (2 s): a paused node's lease runs out
stall_probability = 0.15  # a lock holder stalls past its lease before using the token
stall_factor = 1.6  # ... for this many leases
probe_interval_s = 0.1  # per node: a probe write starts about this often
probe_deadline_s = 1.0
# A probe lane waits for its write's answer (one exactly-once session, one request at a
# time), so while the cluster is down a single lane tries only once per deadline. Staggered
# lanes keep attempts coming every interval, so failover is measured to about 0.1 s.
probe_lanes = 4
PROBE_PREFIX = "probe-"  # not a k... key: the probes' writes are for availability, not checking


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: OpType  # OK, FAIL or INFO
    data: Any
    node: int | None
    error: str = ""


class Recorder:
    """The history, in order of recording, with times relative to `t0` (wall clock)."""

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.time() if t0 is None else t0
        self.events: list[Event] = []
        self.counts = {str(t): 0 for t in (OpType.OK, OpType.FAIL, OpType.INFO)}

    def now(self) -> float:
        return round(time.time() - self.t0, 6)

    def invoke(self, process: str, f: str, key: Any, value: Any = None) -> None:
        self.events.append(Event(process, OpType.INVOKE, f, key, value, self.now()))

    def complete(
        self, process: str, outcome: OpType, f: str, key: Any, value: Any, node: int | None
    ) -> None:
        label = None if node is None else f"n{node}"
        self.events.append(Event(process, outcome, f, key, value, self.now(), label))
        self.counts[str(outcome)] += 1


class Caller:
    """Sends one operation to a chosen node, with retries, and says what came of it."""

    def __init__(self, endpoints: dict[int, str], rng: random.Random) -> None:
        self.endpoints = dict(endpoints)  # node id -> "http://host:port"
        self.by_address = {url.split("://", 1)[1]: i for i, url in endpoints.items()}
        self.rng = rng
        self.suspect_until: dict[int, float] = {}  # nodes that just failed to answer
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(attempt_timeout_s, connect=0.5),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(
        self,
        call: Call,
        node: int,
        session: tuple[str, int] | None = None,
        deadline_s: float = operation_deadline_s,
        stay: bool = False,
    ) -> Answer:
        """`session` = (client id, seq) for writes: the same pair on every retry. With
        `stay`, every attempt goes to `node` (no failover, no redirect).

        A read gets one attempt's time (`attempt_timeout_s`) and stays at its node: a read
        that gets no answer changed nothing and is simply a fail, and the client's next
        operation starts at its home node again."""
        if not call.write:
            deadline_s, stay = min(deadline_s, attempt_timeout_s), True
        headers = {} if session is None else {
            "Paxosd-Client-Id": session[0], "Paxosd-Seq": str(session[1]),
        }  # fmt: skip
        deadline = time.monotonic() + deadline_s
        maybe_applied = False
        why = ""
        while True:
            next_node: int | None = None
            try:
                response = await self.http.request(
                    call.method, self.endpoints[node] + call.path, json=call.body, headers=headers,
                    timeout=max(0.05, min(attempt_timeout_s, deadline - time.monotonic())),
                )  # fmt: skip
            except httpx.ConnectError as error:  # refused: never reached the node
                why = f"n{node}: {type(error).__name__}"
                self.suspect_until[node] = time.monotonic() + suspect_s
            except httpx.HTTPError as error:  # sent, no answer: it may have been applied
                maybe_applied = True
                why = f"n{node}: {type(error).__name__}"
                self.suspect_until[node] = time.monotonic() + suspect_s
            else:
                verdict = judge(call, response.status_code, response.content)
                if verdict.done:
                    if verdict.error is not None:  # a definite refusal (not_holder, ...)
                        return Answer(OpType.FAIL, None, node, str(verdict.error))
                    return Answer(OpType.OK, verdict.data, node)
                maybe_applied |= verdict.maybe_applied
                why = f"n{node}: {verdict.why}"
                if verdict.retry_at is not None:
                    next_node = self.by_address.get(verdict.retry_at.split("://", 1)[1])
            log.debug("%s %s: %s", call.method, call.path, why)
            if time.monotonic() >= deadline:
                unknown = call.write and maybe_applied
                return Answer(OpType.INFO if unknown else OpType.FAIL, None, node, why)
            # Follow a redirect; otherwise try another node (this one may be down or cut off).
            if not stay:
                node = next_node if next_node is not None else self._other(node)
            await asyncio.sleep(self.rng.uniform(*retry_pause_s))

    def healthy(self, node: int) -> int:
        """`node`, unless it just failed to answer: then another node."""
        if self.suspect_until.get(node, 0.0) <= time.monotonic():
            return node
        return self._other(node)

    def _other(self, node: int) -> int:
        """Another node, preferably one that has not just failed to answer anybody."""
        now = time.monotonic()
        others = [i for i in sorted(self.endpoints) if i != node]
        trusted = [i for i in others if self.suspect_until.get(i, 0.0) <= now]
        return self.rng.choice(trusted or others or [node])


class FencedResource:
    """A resource guarded by fencing tokens: it refuses a token older than one it accepted."""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}
        self.refused = 0

    def use(self, lock: str, token: int) -> bool:
        if token < self.highest.get(lock, 0):
            self.refused += 1
            return False
        self.highest[lock] = token
        return True


@dataclass
class Shared:
    """What every client of one run shares."""

    caller: Caller
    recorder: Recorder
    rng: random.Random
    run_id: str
    epoch_s: float = epoch_s_default
    resource: FencedResource = field(default_factory=FencedResource)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    writes_ok: list[float] = field(default_factory=list)  # probe completions (relative time)

    def epoch(self) -> int:
        return int(self.recorder.now() // self.epoch_s)


class Worker:
    """One client: runs operations one at a time until the run stops."""

    def __init__(self, shared: Shared, name: str, home: int) -> None:
        self.shared = shared
        self.name = name
        self.home = home
        self.rng = random.Random(shared.rng.getrandbits(64))
        self.client_id = f"{shared.run_id}-{name}"
        self.seq = 0
        self.ops = 0

    async def run(self) -> None:
        while not self.shared.stopping.is_set():
            await self.step()
            self.ops += 1
            await asyncio.sleep(self.rng.uniform(*think_s))

    async def step(self) -> None:
        raise NotImplementedError

    async def perform(
        self,
        f: str,
        key: Any,
        value: Any,
        op: operations.Operation,
        output: Callable[[Any], tuple[OpType, Any]] | None = None,
        node: int | None = None,
        **send: Any,
    ) -> Answer:
        """Record the invoke, send, record the completion. `output` turns an ok answer's
        data into (outcome, recorded value); by default the answer's value is recorded."""
        call, convert = op
        session = None
        if call.write:
            self.seq += 1
            session = (self.client_id, self.seq)
        recorder = self.shared.recorder
        recorder.invoke(self.name, f, key, value)
        if node is not None:
            target = node
        elif call.write:  # writes go around a home node that just failed to answer
            target = self.shared.caller.healthy(self.home)
        else:  # reads always ask the home node: stale reads show there
            target = self.home
        answer = await self.shared.caller.send(call, target, session, **send)
        if answer.outcome is OpType.OK:
            converted = convert(answer.data)
            outcome, recorded = output(converted) if output else (OpType.OK, converted)
            recorder.complete(self.name, outcome, f, key, recorded, answer.node)
            return Answer(outcome, converted, answer.node)
        recorder.complete(self.name, answer.outcome, f, key, None, answer.node)
        return answer


def _key(shared: Shared, prefix: str, count: int, rng: random.Random) -> str:
    return f"{prefix}{shared.epoch()}-{rng.randrange(count)}"


class KvWorker(Worker):
    """Reads, writes, compare-and-sets and deletes on a few keys (a register per key)."""

    def __init__(self, shared: Shared, name: str, home: int, number: int) -> None:
        super().__init__(shared, name, home)
        self.values = itertools.count(number * 1_000_000 + 1)  # unique across clients
        self.seen: dict[str, Any] = {}

    async def step(self) -> None:
        key = _key(self.shared, "k", kv_keys, self.rng)
        roll = self.rng.random()
        if roll < 0.4:
            answer = await self.perform(
                "get", key, None, operations.get(key),
                lambda kv: (OpType.OK, None if kv is None else kv.value),
            )  # fmt: skip
            if answer.outcome is OpType.OK:
                self.seen[key] = None if answer.data is None else answer.data.value
        elif roll < 0.7:
            value = next(self.values)
            await self.perform("put", key, value, operations.put(key, value), _as_input(value))
        elif roll < 0.95:
            expected, value = self.seen.get(key), next(self.values)
            answer = await self.perform(
                "cas", key, (expected, value), operations.cas(key, expected, value),
                lambda r: (OpType.OK if r.succeeded else OpType.FAIL, (expected, value)),
            )  # fmt: skip
            if answer.data is not None:
                self.seen[key] = answer.data.value
        else:
            await self.perform("delete", key, None, operations.delete(key), _as_input(None))


def _as_input(value: Any) -> Callable[[Any], tuple[OpType, Any]]:
    """A write's ok completion records its input (the history format's convention)."""
    return lambda _: (OpType.OK, value)


class LockWorker(Worker):
    """Acquire a lock, use its fencing token on the resource, release it."""

    async def step(self) -> None:
        lock = _key(self.shared, "lock", locks_per_epoch, self.rng)
        lease_s = lock_ttl_ms / 1000
        grant = await self.perform(
            "acquire", lock, {"owner": self.name, "lease_s": lease_s},
            operations.acquire(lock, self.name, lock_ttl_ms),
            lambda g: (
                (OpType.OK, {"token": g.fencing_token, "owner": self.name, "lease_s": lease_s})
                if g.acquired and g.owner == self.name
                else (OpType.FAIL, None)
            ),
        )  # fmt: skip
        if grant.outcome is not OpType.OK:
            return
        token = grant.data.fencing_token
        if self.rng.random() < stall_probability:
            await asyncio.sleep(lease_s * stall_factor)  # the paused holder
        recorder = self.shared.recorder
        recorder.invoke(self.name, "use", lock, token)
        accepted = self.shared.resource.use(lock, token)
        recorder.complete(
            self.name, OpType.OK if accepted else OpType.FAIL, "use", lock, token, None
        )
        await self.perform(
            "release", lock, token, operations.release(lock, self.name),
            lambda released: (OpType.OK if released else OpType.FAIL, token),
            node=grant.node,
        )  # fmt: skip


class NameWorker(Worker):
    """Races to register a few names; looks them up."""

    async def step(self) -> None:
        name = _key(self.shared, "name", names_per_epoch, self.rng)
        if self.rng.random() < 0.3:
            await self.perform("lookup", name, None, operations.lookup(name))
            return
        await self.perform(
            "register", name, self.name, operations.register(name, self.name),
            lambda r: (OpType.OK, r.owner),
        )  # fmt: skip


class DecisionWorker(Worker):
    """Proposes values for a few decisions (the first one is chosen); reads them."""

    async def step(self) -> None:
        decision = _key(self.shared, "d", decisions_per_epoch, self.rng)
        key = f"decision:{decision}"
        if self.rng.random() < 0.3:
            await self.perform("get", key, None, operations.query(decision))
            return
        value = f"{self.name}-{self.seq + 1}"
        await self.perform("propose", key, value, operations.propose(decision, value))


class BankWorker(Worker):
    """Opens a bank of accounts, moves money between two of them in transactions, audits all
    of them with one range read (the bank checker, `paxosd.check.bank`, judges the history).

    A transfer compares both accounts' mod revisions with what this client last audited and
    writes both new balances at one revision; its compare failing is a definite no (FAIL)."""

    def __init__(self, shared: Shared, name: str, home: int) -> None:
        super().__init__(shared, name, home)
        self.audited: dict[int, tuple[int, int]] = {}  # account -> (mod revision, balance)
        self.bank = ""

    def _key(self, account: int) -> str:
        return f"{self.bank}/{account}"

    async def step(self) -> None:
        bank = f"bank{self.shared.epoch()}"
        if bank != self.bank:
            self.bank, self.audited = bank, {}
            await self._open()
            return
        if len(self.audited) < bank_accounts or self.rng.random() < 0.4:
            await self._audit()
            return
        await self._transfer()

    async def _open(self) -> None:
        first = self._key(0)
        body = {
            "compare": [{"key": first, "target": "create", "result": "=", "create_revision": 0}],
            "success": [{"put": {"key": self._key(i), "value": bank_balance}}
                        for i in range(bank_accounts)],
        }  # fmt: skip
        await self.perform(
            "open", self.bank, (bank_accounts, bank_balance), operations.txn(body),
            lambda r: (OpType.OK, (r.revision,)) if r.succeeded else (OpType.FAIL, None),
        )  # fmt: skip

    async def _audit(self) -> None:
        def output(found: Any) -> tuple[OpType, Any]:
            rows = []
            for kv in found.kvs:
                account = int(kv.key.rsplit("/", 1)[1])
                rows.append((account, kv.revision, kv.value))
            return OpType.OK, (found.revision, tuple(rows))

        answer = await self.perform(
            "audit", self.bank, None,
            operations.range_({"prefix": f"{self.bank}/"}, {}), output,
        )  # fmt: skip
        if answer.outcome is OpType.OK:
            self.audited = {
                int(kv.key.rsplit("/", 1)[1]): (kv.revision, kv.value) for kv in answer.data.kvs
            }

    async def _transfer(self) -> None:
        source, target = self.rng.sample(sorted(self.audited), 2)
        (source_mod, source_balance), (target_mod, target_balance) = (
            self.audited[source], self.audited[target],
        )  # fmt: skip
        if source_balance <= 0:
            await self._audit()
            return
        amount = self.rng.randint(1, source_balance)
        wrote = ((source, source_balance - amount), (target, target_balance + amount))
        body = {
            "compare": [
                {"key": self._key(source), "target": "mod", "result": "=",
                 "mod_revision": source_mod},
                {"key": self._key(target), "target": "mod", "result": "=",
                 "mod_revision": target_mod},
            ],
            "success": [{"put": {"key": self._key(account), "value": balance}}
                        for account, balance in wrote],
        }  # fmt: skip
        answer = await self.perform(
            "transfer", self.bank, (source, target, amount), operations.txn(body),
            lambda r: (OpType.OK, (r.revision, wrote)) if r.succeeded else (OpType.FAIL, None),
        )  # fmt: skip
        if answer.outcome is OpType.OK:
            for account, balance in wrote:
                self.audited[account] = (answer.data.revision, balance)
        else:
            self.audited = {}  # stale, or unknown: audit again before the next transfer


class Probe(Worker):
    """Writes to one node, each with a short deadline and no failover: with probes on every
    node, when some write succeeds is when the cluster could take writes (the availability
    and recovery figures), whatever a client's retry policy. One of `probe_lanes` per node;
    lane k starts k intervals late and then writes every `probe_lanes` intervals."""

    def __init__(self, shared: Shared, node: int, lane: int = 0) -> None:
        super().__init__(shared, f"probe-{node}.{lane}", node)
        self.node = node
        self.lane = lane
        self.key = f"{PROBE_PREFIX}{node}"

    async def run(self) -> None:
        await asyncio.sleep(self.lane * probe_interval_s)
        period = probe_lanes * probe_interval_s
        loop = asyncio.get_running_loop()
        while not self.shared.stopping.is_set():
            started = loop.time()
            await self.step()
            await asyncio.sleep(max(0.0, period - (loop.time() - started)))

    async def step(self) -> None:
        self.ops += 1
        answer = await self.perform(
            "put", self.key, self.ops, operations.put(self.key, self.ops), _as_input(self.ops),
            node=self.node, stay=True, deadline_s=probe_deadline_s,
        )  # fmt: skip
        if answer.outcome is OpType.OK:
            self.shared.writes_ok.append(self.shared.recorder.now())


class SqlWorker(Worker):
    """The SQL database's bank: transfers as interactive transactions (begin, read both
    balances, write the new ones as absolute values, commit), audits of the total, on a table
    every client of the run shares (the sql checker in `paxosd.check.workloads` judges the
    history: a commit applied on a stale read would create or destroy money).

    A transfer is recorded as one operation: ok when its commit applied, fail when anything
    before the commit failed or the commit was refused (a conflict: 409 sql_conflict), info
    when the commit's outcome is unknown. A transaction lives on the node that began it, so
    every step of it goes to that node (no failover: a node lost mid-transaction fails it)."""

    def __init__(self, shared: Shared, name: str, home: int) -> None:
        super().__init__(shared, name, home)
        self.ready = False
        self.table = f"chaos_{shared.run_id.replace('-', '_')}"

    async def step(self) -> None:
        if not self.ready:
            await self._open()
        elif self.rng.random() < 0.35:
            await self._audit()
        else:
            await self._transfer()

    async def _open(self) -> None:
        rows = ", ".join(f"({i}, {bank_balance})" for i in range(sql_accounts))
        body = {"statements": [
            f"CREATE TABLE IF NOT EXISTS {self.table} (id INTEGER PRIMARY KEY, balance INTEGER)",
            f"INSERT OR IGNORE INTO {self.table} VALUES {rows}",
        ]}  # fmt: skip
        call = Call("POST", "/v1/sql/execute", body, write=True)
        answer = await self.perform("sql-open", self.table, (sql_accounts, bank_balance),
                                    (call, lambda data: data))  # fmt: skip
        self.ready = answer.outcome is OpType.OK

    async def _audit(self) -> None:
        body = {"statements": [f"SELECT sum(balance), count(*) FROM {self.table}"]}
        call = Call("POST", "/v1/sql/query", body, write=False)
        await self.perform(
            "sql-audit", self.table, None, (call, lambda data: data),
            lambda data: (OpType.OK, tuple(data["results"][0]["rows"][0])),
        )  # fmt: skip

    async def _transfer(self) -> None:
        caller, recorder = self.shared.caller, self.shared.recorder
        node = caller.healthy(self.home)
        source, target = self.rng.sample(range(sql_accounts), 2)
        recorder.invoke(self.name, "sql-transfer", self.table, (source, target))

        async def step(path: str, body: dict[str, Any]) -> Any:
            answer = await caller.send(Call("POST", path, body, write=False), node, stay=True)
            if answer.outcome is not OpType.OK or "error" in (answer.data or {}):
                return None
            return answer.data

        begun = await step("/v1/sql/begin", {})
        txn = begun and begun["txn"]
        read = txn and await step(
            "/v1/sql/query",
            {
                "txn": txn,
                "statements": [
                    [f"SELECT id, balance FROM {self.table} WHERE id IN (?, ?)", [source, target]]
                ],
            },
        )
        balances = {row[0]: row[1] for row in read["results"][0]["rows"]} if read else {}
        if len(balances) != 2 or balances[source] <= 0:
            recorder.complete(self.name, OpType.FAIL, "sql-transfer", self.table, None, node)
            if txn:
                await step("/v1/sql/rollback", {"txn": txn})
            return
        amount = self.rng.randint(1, balances[source])
        update = f"UPDATE {self.table} SET balance = ? WHERE id = ?"
        wrote = await step("/v1/sql/execute", {"txn": txn, "statements": [
            [update, [balances[source] - amount, source]],
            [update, [balances[target] + amount, target]]]})  # fmt: skip
        if wrote is None:
            recorder.complete(self.name, OpType.FAIL, "sql-transfer", self.table, None, node)
            return
        self.seq += 1
        commit = Call("POST", "/v1/sql/commit", {"txn": txn}, write=True)
        answer = await caller.send(commit, node, (self.client_id, self.seq), stay=True)
        outcome = answer.outcome
        if outcome is OpType.OK and "error" in (answer.data or {}):
            outcome = OpType.FAIL  # a conflict: nothing applied
        value = (source, target, amount) if outcome is OpType.OK else None
        recorder.complete(self.name, outcome, "sql-transfer", self.table, value, answer.node)


WORKER_TYPES: dict[str, type[Worker]] = {
    "kv": KvWorker,
    "locks": LockWorker,
    "names": NameWorker,
    "decisions": DecisionWorker,
    "bank": BankWorker,
    "sql": SqlWorker,
}


def make_workers(shared: Shared, workloads: Sequence[str]) -> list[Worker]:
    """The clients of the chosen workloads, plus the availability probe."""
    unknown = [w for w in workloads if w not in WORKER_TYPES]
    if unknown:
        known = ", ".join(WORKLOADS + OPTIONAL_WORKLOADS)
        raise ValueError(f"unknown workloads {unknown}; known: {known}")
    members = sorted(shared.caller.endpoints)
    workers: list[Worker] = [
        Probe(shared, node, lane) for node in members for lane in range(probe_lanes)
    ]
    number = 0
    for workload in workloads:
        for i in range(CLIENTS_PER_WORKLOAD[workload]):
            name, home = f"{workload}-{i}", members[number % len(members)]
            number += 1
            if workload == "kv":
                workers.append(KvWorker(shared, name, home, number))
            else:
                workers.append(WORKER_TYPES[workload](shared, name, home))
    return workers


async def final_reads(shared: Shared, keys: dict[str, set[Any]], deadline_s: float) -> None:
    """After the full restart: read back every kv key, name and decision once (recorded as
    the process ``final``), retrying until each answers or the deadline passes."""
    worker = Worker(shared, "final", min(shared.caller.endpoints))
    deadline = time.monotonic() + deadline_s
    reads: list[tuple[str, Any, operations.Operation, Callable[[Any], tuple[OpType, Any]] | None]]
    reads = [
        ("get", k, operations.get(k), lambda kv: (OpType.OK, None if kv is None else kv.value))
        for k in sorted(keys.get("kv", set()))
    ]
    reads += [("lookup", n, operations.lookup(n), None) for n in sorted(keys.get("names", set()))]
    reads += [
        ("get", d, operations.query(d.removeprefix("decision:")), None)
        for d in sorted(keys.get("decisions", set()))
    ]
    for f, key, op, output in reads:
        while True:
            answer = await worker.perform(f, key, None, op, output)
            if answer.outcome is OpType.OK or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)


def keys_used(events: Sequence[Event]) -> dict[str, set[Any]]:
    """The kv keys, names and decision keys a history touched."""
    found: dict[str, set[Any]] = {"kv": set(), "names": set(), "decisions": set()}
    for event in events:
        if event.type is not OpType.INVOKE:
            continue
        key = str(event.key)
        if is_kv(event.f, key):
            found["kv"].add(key)
        elif event.f in NAME_FUNCTIONS:
            found["names"].add(key)
        elif key.startswith(DECISION_PREFIX):
            found["decisions"].add(key)
    return found
