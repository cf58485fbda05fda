"""Hypothesis strategies for etcd-model requests, drawn from small pools of keys so that ranges,
compares and duplicate keys collide often."""

from __future__ import annotations

from hypothesis import strategies as st

from paxosd.service.kv import (
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
)

KEYS = (b"a", b"a/1", b"a/2", b"b", b"\xff", b"\x00k")
keys = st.sampled_from(KEYS)
range_ends = st.sampled_from((b"", b"", b"\0", b"a0", b"b", b"c", b"\xff\xff"))
values = st.sampled_from((b"", b"v", b"w", b"\x00\xff")) | st.binary(max_size=6)
revisions = st.integers(min_value=-2, max_value=16)


def mostly(
    default: object, other: st.SearchStrategy[object], odds: int
) -> st.SearchStrategy[object]:
    """`default` `odds` times in `odds + 1`, else `other`."""
    return st.integers(0, odds).flatmap(lambda n: other if n == 0 else st.just(default))


# Mostly the defaults: a filter, a past revision or count_only on every range would leave
# little to compare.
read_revisions = mostly(0, revisions, 3)
filters = mostly(0, st.integers(min_value=0, max_value=16), 4)
rarely = mostly(False, st.just(True), 8)

ranges = st.builds(
    Range,
    key=keys,
    range_end=range_ends,
    limit=mostly(0, st.integers(min_value=-1, max_value=4), 2),
    revision=read_revisions,
    sort_order=st.sampled_from(SortOrder),
    sort_target=st.sampled_from(SortTarget),
    serializable=st.booleans(),
    keys_only=rarely,
    count_only=rarely,
    min_mod_revision=filters,
    max_mod_revision=filters,
    min_create_revision=filters,
    max_create_revision=filters,
)


@st.composite
def puts(draw: st.DrawFn) -> Put:
    ignore_value = draw(rarely)
    ignore_lease = draw(rarely)
    return Put(
        key=draw(keys),
        value=b"" if ignore_value else draw(values),
        lease=0,
        prev_kv=draw(st.booleans()),
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


deletes = st.builds(DeleteRange, key=keys, range_end=range_ends, prev_kv=st.booleans())


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    operand: dict[str, object] = {}
    if target is CompareTarget.VALUE:
        operand["value"] = draw(values)
    else:
        name = {
            CompareTarget.VERSION: "version",
            CompareTarget.CREATE: "create_revision",
            CompareTarget.MOD: "mod_revision",
            CompareTarget.LEASE: "lease",
        }[target]
        operand[name] = draw(st.integers(min_value=0, max_value=12))
    return Compare(
        key=draw(keys),
        target=target,
        result=draw(st.sampled_from(CompareResult)),
        range_end=draw(range_ends),
        **operand,  # type: ignore[arg-type]
    )


def _txns(children: st.SearchStrategy[object]) -> st.SearchStrategy[Txn]:
    ops = st.lists(children, max_size=3).map(tuple)
    return st.builds(
        Txn,
        compare=st.lists(compares(), max_size=3).map(tuple),
        success=ops,
        failure=ops,
    )


request_ops = st.recursive(
    ranges | puts() | deletes, lambda children: _txns(children), max_leaves=8
)
txns = _txns(request_ops)
compacts = st.builds(Compact, revision=revisions, physical=st.booleans())
# Writes and ranges weighted up, so that histories have several versions of several keys and
# ranges see them; compactions rare, so that history stays to be read.
kv_ops = st.one_of(puts(), puts(), puts(), deletes, ranges, ranges, ranges, txns, txns, compacts)
