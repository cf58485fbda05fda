"""Lock rules: leases on log time, re-entrant acquire, global fencing tokens, holder checks."""

from __future__ import annotations

from paxosd.service import (
    AdvanceTime,
    Error,
    LockAcquire,
    LockRefresh,
    LockRelease,
    LockResult,
    LockStatus,
    Released,
    StateMachine,
)

from .helpers import Log


def acquire(log: Log, owner: str, ttl_ms: int = 1000, name: str = "L") -> object:
    return log.run(LockAcquire(name=name, owner=owner, ttl_ms=ttl_ms))


def held(owner: str, token: int, expires_in_ms: int, name: str = "L") -> LockResult:
    return LockResult(
        acquired=True, name=name, owner=owner, fencing_token=token, expires_in_ms=expires_in_ms
    )


def test_acquire_of_free_lock_grants_a_token_and_lease() -> None:
    """A free lock is granted with the next fencing token and its whole lease, ttl."""
    log = Log()
    log.run(AdvanceTime(now_ms=5000))
    result = acquire(log, "o1")
    assert result == held("o1", 1, 1000)
    assert result.to_json() == {
        "acquired": True,
        "owner": "o1",
        "fencing_token": 1,
        "expires_in_ms": 1000,
    }


def test_acquire_of_held_lock_fails_and_names_the_holder() -> None:
    """Contenders get acquired=False with the current holder and the lease it has left."""
    log = Log()
    acquire(log, "o1")
    log.run(AdvanceTime(now_ms=300))
    assert acquire(log, "o2") == LockResult(
        acquired=False, name="L", owner="o1", fencing_token=1, expires_in_ms=700
    )


def test_reentrant_acquire_refreshes_and_keeps_the_token() -> None:
    """The holder acquiring again extends its lease and keeps the SAME token."""
    log = Log()
    acquire(log, "o1")
    log.run(AdvanceTime(now_ms=500))
    assert acquire(log, "o1", ttl_ms=2000) == held("o1", 1, 2000)


def test_lease_expires_just_after_expires_at_on_log_time() -> None:
    """A lease is live while now <= expires_at_ms (its last millisecond included, since log
    time is truncated to whole milliseconds); one millisecond later the lock is free."""
    log = Log()
    acquire(log, "o1", ttl_ms=1000)
    log.run(AdvanceTime(now_ms=1000))
    assert log.machine.read(LockStatus(name="L")) == held("o1", 1, 0)
    log.run(AdvanceTime(now_ms=1001))
    assert log.machine.read(LockStatus(name="L")) == LockResult(
        acquired=False, name="L", owner=None, fencing_token=None, expires_in_ms=None
    )


def test_only_advance_time_moves_the_clock() -> None:
    """Without AdvanceTime the lease never expires, however many commands are applied."""
    log = Log()
    acquire(log, "o1", ttl_ms=100)
    for _ in range(1000):
        log.run(LockStatus(name="L"))
    assert acquire(log, "o2") == LockResult(
        acquired=False, name="L", owner="o1", fencing_token=1, expires_in_ms=100
    )


def test_time_going_backwards_is_ignored() -> None:
    """AdvanceTime is monotone: an older timestamp cannot revive an expired lease."""
    log = Log()
    acquire(log, "o1", ttl_ms=100)
    log.run(AdvanceTime(now_ms=200))
    log.run(AdvanceTime(now_ms=50))
    assert log.machine.log_time_ms == 200
    assert log.machine.read(LockStatus(name="L")).acquired is False


def test_grant_after_expiry_gets_a_new_larger_token_even_for_the_same_owner() -> None:
    """An expired lease is gone: re-acquiring is a new grant with a new token."""
    log = Log()
    acquire(log, "o1", ttl_ms=100)
    log.run(AdvanceTime(now_ms=101))
    assert acquire(log, "o1") == held("o1", 2, 1000)
    log.run(AdvanceTime(now_ms=1102))
    assert acquire(log, "o2") == held("o2", 3, 1000)


def test_fencing_tokens_are_global_across_locks() -> None:
    """One counter serves every lock, so tokens are unique across the whole service."""
    log = Log()
    assert acquire(log, "o1", name="A") == held("o1", 1, 1000, name="A")
    assert acquire(log, "o1", name="B") == held("o1", 2, 1000, name="B")
    log.run(LockRelease(name="A", owner="o1"))
    assert acquire(log, "o2", name="A") == held("o2", 3, 1000, name="A")


def test_refresh_by_holder_extends_the_lease() -> None:
    """Refresh moves expiry to now + ttl and keeps the token."""
    log = Log()
    acquire(log, "o1")
    log.run(AdvanceTime(now_ms=900))
    assert log.run(LockRefresh(name="L", owner="o1", ttl_ms=500)) == held("o1", 1, 500)
    log.run(AdvanceTime(now_ms=1300))  # past the first lease, inside the refreshed one
    assert log.machine.read(LockStatus(name="L")) == held("o1", 1, 100)


def test_refresh_by_non_holder_is_not_holder() -> None:
    """Only the holder may refresh; others get Error("not_holder") and change nothing."""
    log = Log()
    acquire(log, "o1")
    result = log.run(LockRefresh(name="L", owner="o2", ttl_ms=500))
    assert isinstance(result, Error) and result.code == "not_holder"
    assert log.machine.read(LockStatus(name="L")) == held("o1", 1, 1000)


def test_refresh_after_expiry_is_not_holder() -> None:
    """An expired lease cannot be refreshed back to life: acquire again instead."""
    log = Log()
    acquire(log, "o1", ttl_ms=100)
    log.run(AdvanceTime(now_ms=101))
    result = log.run(LockRefresh(name="L", owner="o1", ttl_ms=500))
    assert isinstance(result, Error) and result.code == "not_holder"
    unknown = log.run(LockRefresh(name="nope", owner="o1", ttl_ms=500))
    assert isinstance(unknown, Error) and unknown.code == "not_holder"


def test_release_by_holder_frees_the_lock() -> None:
    """The holder's release frees the lock at once; the next grant gets a new token."""
    log = Log()
    acquire(log, "o1")
    assert log.run(LockRelease(name="L", owner="o1")) == Released(
        released=True, name="L", owner="o1"
    )
    assert acquire(log, "o2") == held("o2", 2, 1000)


def test_release_by_non_holder_is_not_holder() -> None:
    """Releasing someone else's lock is refused and leaves it held."""
    log = Log()
    acquire(log, "o1")
    result = log.run(LockRelease(name="L", owner="o2"))
    assert isinstance(result, Error) and result.code == "not_holder"
    assert log.machine.read(LockStatus(name="L")) == held("o1", 1, 1000)


def test_repeated_release_by_last_owner_is_idempotent() -> None:
    """Releasing an already free lock you last held answers released=False (a safe retry)."""
    log = Log()
    acquire(log, "o1")
    log.run(LockRelease(name="L", owner="o1"))
    again = log.run(LockRelease(name="L", owner="o1"))
    assert again == Released(released=False, name="L", owner="o1")
    assert again.to_json() == {"released": False, "name": "L", "owner": "o1"}


def test_release_after_expiry_by_last_owner_answers_released_false() -> None:
    """An expired lease is already free: its last owner's release is a no-op, not an error."""
    log = Log()
    acquire(log, "o1", ttl_ms=100)
    log.run(AdvanceTime(now_ms=101))
    assert log.run(LockRelease(name="L", owner="o1")) == Released(
        released=False, name="L", owner="o1"
    )


def test_release_of_free_lock_by_stranger_is_not_holder() -> None:
    """Only the last owner gets the idempotent answer; anyone else is not_holder."""
    log = Log()
    never = log.run(LockRelease(name="never-used", owner="o1"))
    assert isinstance(never, Error) and never.code == "not_holder"
    acquire(log, "o1")
    log.run(LockRelease(name="L", owner="o1"))
    stranger = log.run(LockRelease(name="L", owner="o2"))
    assert isinstance(stranger, Error) and stranger.code == "not_holder"


def test_log_time_needs_moving_only_while_a_lease_may_be_live() -> None:
    """The leader stops proposing idle time once every lease has expired, and starts again with
    the next grant or refresh; a snapshot keeps what it needs to know."""
    log = Log()
    assert not log.machine.wants_log_time  # a fresh cluster idles without writing
    acquire(log, "o1", ttl_ms=1000)
    assert log.machine.wants_log_time
    log.run(AdvanceTime(now_ms=1000))  # live up to and including expires_at_ms
    assert log.machine.wants_log_time
    restored = Log(StateMachine.restore(log.machine.snapshot()))
    assert restored.machine.wants_log_time
    log.run(AdvanceTime(now_ms=1001))
    assert not log.machine.wants_log_time
    log.run(LockRefresh(name="L", owner="o1", ttl_ms=1000))  # refused: it expired
    assert not log.machine.wants_log_time
    acquire(log, "o2", ttl_ms=100)
    assert log.machine.wants_log_time
