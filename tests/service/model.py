"""A deliberately naive reference model of the state machine, for differential testing.

It is written differently on purpose: it works on command objects (never bytes), answers in
the HTTP JSON shapes directly, keeps per-record dicts instead of tuples, compares JSON values by
normalising them to exact-number trees (fractions), expires leases eagerly on every time step,
and keeps client sessions in a plain list, oldest first. If machine and model agree on random
histories, both are probably right about the rules in the brief.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from paxosd.service import (
    AdvanceTime,
    Cas,
    DecisionGet,
    DecisionPropose,
    Delete,
    Get,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockStatus,
    NameLookup,
    NameRegister,
    Noop,
    Put,
    Request,
)


def normal(value: Any) -> Any:
    """A hashable tree where equal means JSON-equal: bools apart, numbers by exact value."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", Fraction(value))
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("list", tuple(normal(item) for item in value))
    return ("obj", frozenset((key, normal(item)) for key, item in value.items()))


class Model:
    def __init__(self, clients_max: int = 100_000) -> None:
        self.clients_max = clients_max
        self.time = 0
        self.rev = 1  # etcd: an empty store is at revision 1
        self.tokens = 0
        self.kv: dict[str, dict[str, Any]] = {}
        self.locks: dict[str, dict[str, Any]] = {}  # holder None when free
        self.names: dict[str, str] = {}
        self.decisions: dict[str, Any] = {}
        self.sessions: list[list[Any]] = []  # [client_id, seq, request, answer], oldest first

    # The log ------------------------------------------------------------------------------
    def log(self, command: Any) -> dict[str, Any] | None:
        if isinstance(command, Noop):
            return None
        if isinstance(command, AdvanceTime):
            self.time = max(self.time, command.now_ms)
            for lock in self.locks.values():  # eager expiry, unlike the machine
                if lock["holder"] is not None and lock["until"] < self.time:
                    lock["holder"] = None
            return None
        if isinstance(command, Request):
            return self.request(command)
        return self.op(command)

    def request(self, request: Request) -> dict[str, Any] | None:
        found = [s for s in self.sessions if s[0] == request.client_id]
        if found:
            session = found[0]
            if request.seq < session[1]:
                return {"error": "stale_request"}
            if request.seq == session[1]:
                if repr(request) != repr(session[2]):  # repr tells true from 1, as bytes do
                    return {"error": "request_mismatch"}
                self.sessions.remove(session)
                self.sessions.append(session)
                return session[3]
            self.sessions.remove(session)
        answer = self.op(request.op)
        self.sessions.append([request.client_id, request.seq, request, answer])
        if len(self.sessions) > self.clients_max:
            self.sessions.pop(0)
        return answer

    def read(self, query: Any) -> dict[str, Any] | None:
        return self.op(query)

    # Operations ---------------------------------------------------------------------------
    def op(self, op: Any) -> dict[str, Any]:
        if isinstance(op, Get):
            rec = self.kv.get(op.key)
            if rec is None:
                return {"key": op.key, "value": None, "revision": 0}
            return {"key": op.key, "value": rec["value"], "revision": rec["modified"]}
        if isinstance(op, Put):
            return {"key": op.key, "revision": self.write(op.key, op.value)}
        if isinstance(op, Delete):
            if op.key in self.kv:
                del self.kv[op.key]
                self.rev += 1
                return {"key": op.key, "existed": True, "revision": self.rev}
            return {"key": op.key, "existed": False, "revision": self.rev}
        if isinstance(op, Cas):
            rec = self.kv.get(op.key)
            if op.expected is None:
                ok = rec is None
            else:
                ok = rec is not None and normal(rec["value"]) == normal(op.expected)
            if ok:
                revision = self.write(op.key, op.value)
                return {"succeeded": True, "key": op.key, "value": op.value, "revision": revision}
            return {
                "succeeded": False,
                "key": op.key,
                "value": None if rec is None else rec["value"],
                "revision": 0 if rec is None else rec["modified"],
            }
        if isinstance(op, LockAcquire | LockRefresh | LockRelease | LockStatus):
            return self.lock(op)
        if isinstance(op, NameRegister):
            if op.name not in self.names:
                self.names[op.name] = op.owner
            owner = self.names[op.name]
            return {"registered": owner == op.owner, "name": op.name, "owner": owner}
        if isinstance(op, NameLookup):
            owner = self.names.get(op.name)
            return {"registered": owner is not None, "name": op.name, "owner": owner}
        if isinstance(op, DecisionPropose):
            if op.id not in self.decisions:
                self.decisions[op.id] = op.value
            return {"id": op.id, "chosen": self.decisions[op.id]}
        assert isinstance(op, DecisionGet)
        return {"id": op.id, "chosen": self.decisions.get(op.id)}

    def write(self, key: str, value: Any) -> int:
        self.rev += 1
        created = self.kv[key]["created"] if key in self.kv else self.rev
        # The store keeps JSON text with object members sorted by name; reads parse it back.
        stored = json.loads(json.dumps(value, sort_keys=True))
        self.kv[key] = {"value": stored, "created": created, "modified": self.rev}
        return self.rev

    def lock(self, op: Any) -> dict[str, Any]:
        lock = self.locks.get(op.name)
        holder = None if lock is None else lock["holder"]
        if isinstance(op, LockStatus):
            if holder is None:
                return self.lock_json(False, None, None, None)
            return self.lock_json(True, holder, lock["token"], lock["until"] - self.time)
        if isinstance(op, LockAcquire):
            if holder is not None and holder != op.owner:
                return self.lock_json(False, holder, lock["token"], lock["until"] - self.time)
            if holder is None:
                self.tokens += 1
                lock = self.locks[op.name] = {"holder": op.owner, "last": op.owner}
                lock["token"] = self.tokens
            lock["until"] = self.time + op.ttl_ms
            return self.lock_json(True, op.owner, lock["token"], op.ttl_ms)
        if isinstance(op, LockRefresh):
            if holder != op.owner:
                return {"error": "not_holder"}
            lock["until"] = self.time + op.ttl_ms
            return self.lock_json(True, op.owner, lock["token"], op.ttl_ms)
        assert isinstance(op, LockRelease)
        if holder == op.owner:
            lock["holder"] = None
            return {"released": True, "name": op.name, "owner": op.owner}
        if holder is None and lock is not None and lock["last"] == op.owner:
            return {"released": False, "name": op.name, "owner": op.owner}
        return {"error": "not_holder"}

    @staticmethod
    def lock_json(acquired: bool, owner: Any, token: Any, until: Any) -> dict[str, Any]:
        return {
            "acquired": acquired,
            "owner": owner,
            "fencing_token": token,
            "expires_in_ms": until,
        }
