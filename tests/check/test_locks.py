"""Lock (fencing token), name and decision checkers: good histories pass, broken ones fail."""

from __future__ import annotations

import json

from paxosd.check.history import History, parse_jsonl
from paxosd.check.locks import check_decisions, check_locks, check_names

Row = tuple[object, str, str, object, object, float]


def history(*rows: Row) -> History:
    """Rows of (process, type, f, key, value, time) as a paxosd JSON Lines history."""
    keys = ("process", "type", "f", "key", "value", "time")
    return parse_jsonl("\n".join(json.dumps(dict(zip(keys, row, strict=True))) for row in rows))


def grant(
    p: str, lock: str, token: int, t0: float, t1: float, lease_s: float | None = None
) -> list[Row]:
    value = {"token": token} if lease_s is None else {"token": token, "lease_s": lease_s}
    return [(p, "invoke", "acquire", lock, None, t0), (p, "ok", "acquire", lock, value, t1)]


def use(p: str, lock: str, token: int, t0: float, t1: float, outcome: str = "ok") -> list[Row]:
    return [(p, "invoke", "use", lock, token, t0), (p, outcome, "use", lock, token, t1)]


def release(p: str, lock: str, token: int | None, t0: float, t1: float) -> list[Row]:
    return [(p, "invoke", "release", lock, token, t0), (p, "ok", "release", lock, token, t1)]


# ---------------------------------------------------------------------------- locks


def test_well_behaved_lock_passes() -> None:
    h = history(
        *grant("a", "L", 1, 0, 1, lease_s=10),
        *use("a", "L", 1, 2, 3),
        *release("a", "L", 1, 4, 5),
        *grant("b", "L", 2, 6, 7, lease_s=10),
        *use("b", "L", 2, 8, 9),
        *use("a", "L", 1, 10, 11, outcome="fail"),  # stale, and the resource refused it
    )
    result = check_locks(h)
    assert result.ok, result.problems
    assert result.problems == []


def test_tokens_must_grow_with_every_grant() -> None:
    h = history(*grant("a", "L", 5, 0, 1), *grant("b", "L", 3, 2, 3))
    result = check_locks(h)
    assert not result.ok
    assert any("token 3" in p and "not above token 5" in p for p in result.problems)


def test_a_token_granted_twice_is_caught() -> None:
    h = history(*grant("a", "L", 4, 0, 3), *grant("b", "L", 4, 1, 2))  # concurrent grants
    result = check_locks(h)
    assert not result.ok
    assert any("granted twice" in p for p in result.problems)


def test_a_holder_acquiring_again_keeps_its_token() -> None:
    """The service answers a holder's second acquire (its release failed, say) with the token
    it holds: that is one grant, not two, unless a release of it completed in between."""
    reentrant = history(*grant("a", "L", 4, 0, 1, lease_s=1), *grant("a", "L", 4, 2, 3))
    assert check_locks(reentrant).ok, check_locks(reentrant).problems
    released = history(
        *grant("a", "L", 4, 0, 1, lease_s=1),
        *release("a", "L", 4, 1.2, 1.5),
        *grant("a", "L", 4, 2, 3),
    )
    result = check_locks(released)
    assert any("granted twice" in p for p in result.problems), result.problems
    overtaken = history(
        *grant("a", "L", 4, 0, 1),
        *grant("b", "L", 5, 2, 3),
        *grant("a", "L", 4, 4, 5),
    )
    result = check_locks(overtaken)
    assert any("token 4" in p and "not above token 5" in p for p in result.problems)


def test_global_counter_makes_tokens_distinct_across_locks() -> None:
    h = history(*grant("a", "L1", 1, 0, 1), *grant("b", "L2", 1, 2, 3))
    assert check_locks(h).ok
    result = check_locks(h, global_tokens=True)
    assert not result.ok
    assert any("all locks" in p for p in result.problems)


def test_resource_accepting_a_stale_token_is_caught() -> None:
    h = history(
        *grant("a", "L", 1, 0, 1),
        *grant("b", "L", 2, 2, 3),
        *use("b", "L", 2, 4, 5),
        *use("a", "L", 1, 6, 7),  # a paused, woke up, and the resource let it in
    )
    result = check_locks(h)
    assert not result.ok
    assert any("accepted stale token 1" in p for p in result.problems)


def test_strict_fencing_also_rejects_tokens_older_than_a_completed_grant() -> None:
    h = history(*grant("a", "L", 1, 0, 1), *grant("b", "L", 2, 2, 3), *use("a", "L", 1, 4, 5))
    assert check_locks(h).ok  # the resource had not yet seen token 2
    result = check_locks(h, strict_fencing=True)
    assert not result.ok
    assert any("after token 2 was granted" in p for p in result.problems)


def test_confirmed_double_grant_is_caught() -> None:
    overlapping = history(*grant("a", "L", 1, 0, 1, lease_s=10), *grant("b", "L", 2, 2, 3))
    result = check_locks(overlapping)
    assert not result.ok
    assert any("while a certainly held it" in p for p in result.problems)
    released = history(
        *grant("a", "L", 1, 0, 1, lease_s=10),
        *release("a", "L", None, 1.5, 1.8),  # no token: the caller's latest grant
        *grant("b", "L", 2, 2, 3),
    )
    assert check_locks(released).ok
    expired = history(*grant("a", "L", 1, 0, 1, lease_s=1.5), *grant("b", "L", 2, 2, 3))
    assert check_locks(expired).ok
    unknown_lease = history(*grant("a", "L", 1, 0, 1), *grant("b", "L", 2, 2, 3))
    assert check_locks(unknown_lease).ok  # nothing is certain without a lease or release


def test_uses_must_carry_a_real_token_of_the_user() -> None:
    h = history(*grant("a", "L", 1, 0, 1), *use("a", "L", 7, 2, 3), *use("b", "L", 1, 4, 5))
    result = check_locks(h)
    assert not result.ok
    assert any("token 7 that no grant returned" in p for p in result.problems)
    assert any("b used token 1, granted to a" in p for p in result.problems)


def test_a_token_cannot_be_used_before_it_is_granted() -> None:
    h = history(*use("a", "L", 1, 0, 1), *grant("a", "L", 1, 2, 3))
    result = check_locks(h)
    assert any("used before it was granted" in p for p in result.problems)


# ---------------------------------------------------------------------------- names


def test_names_one_owner_forever() -> None:
    h = history(
        ("p1", "invoke", "register", "svc", None, 0),
        ("p2", "invoke", "register", "svc", None, 0.5),
        ("p1", "ok", "register", "svc", "p1", 1),
        ("p2", "ok", "register", "svc", "p1", 2),  # taken: p2 is told the owner
        ("p3", "invoke", "lookup", "other", None, 3),
        ("p3", "ok", "lookup", "other", None, 4),
        ("p3", "invoke", "lookup", "svc", None, 5),
        ("p3", "ok", "lookup", "svc", "p1", 6),
    )
    result = check_names(h)
    assert result.ok, result.problems


def test_names_two_winners_is_caught() -> None:
    h = history(
        ("p1", "invoke", "register", "svc", None, 0),
        ("p1", "ok", "register", "svc", None, 1),  # null output: p1 got it
        ("p2", "invoke", "register", "svc", None, 2),
        ("p2", "ok", "register", "svc", None, 3),  # ...and so did p2: broken
    )
    result = check_names(h)
    assert not result.ok
    assert any("answers disagree" in p for p in result.problems)


def test_names_forgotten_or_invented_owner_is_caught() -> None:
    h = history(
        ("p1", "invoke", "register", "svc", None, 0),
        ("p1", "ok", "register", "svc", None, 1),
        ("p3", "invoke", "lookup", "svc", None, 2),
        ("p3", "ok", "lookup", "svc", None, 3),  # forgot p1
        ("p4", "invoke", "lookup", "db", None, 2),
        ("p4", "ok", "lookup", "db", "ghost", 3),  # nobody registered db
    )
    result = check_names(h)
    assert not result.ok
    assert any("name svc: answered nothing" in p for p in result.problems)
    assert any("name db: 'ghost' was never proposed" in p for p in result.problems)


# ---------------------------------------------------------------------------- decisions


def test_decisions_agree() -> None:
    h = history(
        ("c1", "invoke", "propose", 7, "x", 0),
        ("c2", "invoke", "propose", 7, "y", 0.1),
        ("c3", "invoke", "get", 7, None, 0.2),
        ("c3", "ok", "get", 7, None, 0.3),  # not decided yet: fine
        ("c1", "ok", "propose", 7, "y", 1),  # c1 learns y was chosen
        ("c2", "info", "propose", 7, None, 2),
        ("c3", "invoke", "get", 7, None, 3),
        ("c3", "ok", "get", 7, "y", 4),
    )
    result = check_decisions(h)
    assert result.ok, result.problems
    assert "ok" in result.explain()


def test_decisions_broken_history_fails() -> None:
    h = history(
        ("c1", "invoke", "propose", 1, "x", 0),
        ("c2", "invoke", "propose", 1, "y", 0),
        ("c1", "ok", "propose", 1, "x", 1),
        ("c2", "ok", "propose", 1, "y", 1),  # two values chosen for slot 1
        ("c3", "invoke", "get", 2, None, 2),
        ("c3", "ok", "get", 2, "z", 3),  # slot 2 chose a value nobody proposed
        ("c3", "invoke", "get", 1, None, 4),
        ("c3", "ok", "get", 1, None, 5),  # slot 1 forgot its decision
    )
    result = check_decisions(h)
    assert not result.ok
    text = "\n".join(result.problems)
    assert "decision 1: answers disagree" in text
    assert "decision 2: 'z' was never proposed" in text
    assert "decision 1: answered nothing" in text
    assert result.explain().startswith("decisions: 3 problem(s)")
