"""Hypothesis strategies for commands, deliberately drawn from small pools.

Small pools of keys, owners, clients and values make collisions (the interesting cases: CAS
matches, lock contention, duplicate seqs, JSON values that are equal only as JSON) frequent.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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

KEYS = ("a", "b", "c")
LOCKS = ("l1", "l2")
OWNERS = ("o1", "o2", "o3")
NAMES = ("n1", "n2")
DECISIONS = ("d1", "d2")
CLIENTS = ("c1", "c2", "c3", "c4")

# Values equal as Python but not as JSON (True vs 1), equal as JSON but not identical (1 vs 1.0,
# dict order), and plain distinct ones.
TRICKY_VALUES: tuple[Any, ...] = (
    None,
    0,
    1,
    1.0,
    True,
    False,
    "",
    "x",
    [1],
    [True],
    {"p": 1, "q": 2},
    {"q": 2, "p": 1},
    {"p": 1.0, "q": 2},
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
tricky = st.sampled_from(TRICKY_VALUES)
# Two parts tricky to one part arbitrary: collisions between stored and expected values matter.
values = st.sampled_from((True, True, False)).flatmap(
    lambda pick_tricky: tricky if pick_tricky else json_values
)
decision_values = values.filter(lambda value: value is not None)
ttls = st.sampled_from((100, 250, 1000, 3_600_000))


# Op kinds, repeated to weight them: plain one_of() would not give these proportions.
OP_KINDS = (
    ("get",) * 2
    + ("put",) * 4
    + ("delete",) * 2
    + ("cas",) * 4
    + ("acquire",) * 4
    + ("refresh",) * 2
    + ("release",) * 3
    + ("status",) * 1
    + ("register",) * 2
    + ("lookup",) * 1
    + ("propose",) * 2
    + ("decide",) * 1
)


@st.composite
def client_ops(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(OP_KINDS))
    key = draw(st.sampled_from(KEYS))
    lock = draw(st.sampled_from(LOCKS))
    owner = draw(st.sampled_from(OWNERS))
    if kind == "get":
        return Get(key=key)
    if kind == "put":
        return Put(key=key, value=draw(values))
    if kind == "delete":
        return Delete(key=key)
    if kind == "cas":
        return Cas(key=key, expected=draw(values), value=draw(values))
    if kind == "acquire":
        return LockAcquire(name=lock, owner=owner, ttl_ms=draw(ttls))
    if kind == "refresh":
        return LockRefresh(name=lock, owner=owner, ttl_ms=draw(ttls))
    if kind == "release":
        return LockRelease(name=lock, owner=owner)
    if kind == "status":
        return LockStatus(name=lock)
    name = draw(st.sampled_from(NAMES))
    if kind == "register":
        return NameRegister(name=name, owner=owner)
    if kind == "lookup":
        return NameLookup(name=name)
    decision = draw(st.sampled_from(DECISIONS))
    if kind == "propose":
        return DecisionPropose(id=decision, value=draw(decision_values))
    return DecisionGet(id=decision)


read_ops = st.one_of(
    st.builds(Get, key=st.sampled_from(KEYS)),
    st.builds(LockStatus, name=st.sampled_from(LOCKS)),
    st.builds(NameLookup, name=st.sampled_from(NAMES)),
    st.builds(DecisionGet, id=st.sampled_from(DECISIONS)),
)
# Time moves in steps around the TTLs, sometimes backwards (which must be ignored).
times = st.integers(min_value=0, max_value=12_000).map(lambda now: AdvanceTime(now_ms=now))
# seq in a tiny range: repeats (retries) and smaller values (stale) happen all the time.
requests = st.builds(
    Request, client_id=st.sampled_from(CLIENTS), seq=st.integers(0, 6), op=client_ops()
)

STEP_KINDS = ("request",) * 8 + ("op",) * 3 + ("time",) * 2 + ("read",) * 2 + ("noop", "raw")


@st.composite
def steps(draw: st.DrawFn) -> tuple[str, Any]:
    """One step of a history, weighted towards client commands (the steps with rules).

    ("log", command) goes through apply; ("read", query) through read; ("raw", bytes) is a
    payload the log chose that does not decode.
    """
    kind = draw(st.sampled_from(STEP_KINDS))
    if kind == "request":
        return ("log", draw(requests))
    if kind == "op":
        return ("log", draw(client_ops()))
    if kind == "time":
        return ("log", draw(times))
    if kind == "read":
        return ("read", draw(read_ops))
    if kind == "noop":
        return ("log", Noop())
    return ("raw", draw(st.sampled_from((b"\xc1", b"\x93\x02\x01\x02", b"\x91"))))


histories = st.lists(steps(), min_size=10, max_size=80)
