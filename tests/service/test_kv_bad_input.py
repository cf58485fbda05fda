"""Bad input at the state machine and its encoding: each refusal is a clear typed error, and
nothing changes - not the revision, not a key, not the history."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from paxosd.core.multi.learner import Learner
from paxosd.service import BadCommand, Error, Request, Router, encode, validate
from paxosd.service.kv import (
    Compact,
    Compare,
    DeleteRange,
    EventType,
    InvalidRequest,
    KvError,
    KvLimits,
    Put,
    Range,
    Txn,
)
from paxosd.service.namespace import Options


def busy() -> Router:
    router = Router(options=Options(kv_limits=KvLimits(range_keys_max=3)))
    for i in range(6):
        router.apply(i + 1, encode(Request(client_id="c", seq=i + 1, op=Put(key=b"k%d" % i))))
    router.apply(7, encode(Request(client_id="c", seq=7, op=Compact(revision=3))))
    return router


def kv_state(router: Router) -> tuple[Any, ...]:
    store = router.kv.store
    return (
        store.revision,
        store.compact_revision,
        store.live_keys,
        store.history_bytes,
        {key: list(versions) for key, versions in store.history.items()},
    )


REFUSED_BY_THE_STORE: list[tuple[Any, str]] = [
    (Range(key=b"k", range_end=b"\0", revision=2), "compacted"),
    (Range(key=b"k", revision=99), "future_revision"),
    (Compact(revision=2), "compacted"),
    (Compact(revision=99), "future_revision"),
    (Put(key=b"k0", lease=5), "lease_not_found"),
    (Put(key=b"nope", ignore_value=True), "key_not_found"),
    (Txn(success=(Put(key=b"n"), Range(key=b"k", revision=2))), "compacted"),
    (Txn(success=(Put(key=b"n", lease=1),)), "lease_not_found"),
]


@pytest.mark.parametrize(("op", "code"), REFUSED_BY_THE_STORE, ids=lambda x: str(x)[:40])
def test_refusals_of_the_store_are_typed_answers_and_change_nothing(op: Any, code: str) -> None:
    router = busy()
    before = kv_state(router)
    answer, _ = router.apply(100, encode(Request(client_id="d", seq=1, op=op)))
    assert isinstance(answer, KvError) and answer.code == code, answer
    assert answer.message.startswith("etcdserver: ") and answer.detail
    assert kv_state(router) == before
    assert router.events == ()


def test_a_read_over_the_answer_limit_names_the_limit_and_the_count() -> None:
    router = busy()
    answer = router.read(Range(key=b"k", range_end=b"\0"))
    assert isinstance(answer, KvError) and answer.code == "answer_too_large"
    assert "6 keys" in answer.detail and "range_keys_max = 3" in answer.detail


REFUSED_BEFORE_THE_LOG: list[tuple[Any, str]] = [
    (Txn(success=tuple(Put(key=b"x%d" % i) for i in range(129))), "too_many_ops"),
    (Txn(compare=(Compare(key=b"k", target=9),)), "invalid_argument"),  # type: ignore[arg-type]
    (Txn(success=(Put(key=b"k"), Put(key=b"k"))), "duplicate_key"),
    (Txn(success=(DeleteRange(key=b"a", range_end=b"z"), Put(key=b"k"))), "duplicate_key"),
    (Range(key=b""), "empty_key"),
    (Put(key=b"k", value=b"v" * (1024 * 1024 + 1)), "request_too_large"),
]


@pytest.mark.parametrize(("op", "code"), REFUSED_BEFORE_THE_LOG, ids=lambda x: str(x)[:40])
def test_invalid_requests_are_refused_before_the_log(op: Any, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(op)
    assert caught.value.error.code == code


def test_an_invalid_payload_in_the_log_is_a_bad_command_answer_and_changes_nothing() -> None:
    """A payload no encoder made (a duplicate key, an unknown compare target) answers
    bad_command on every replica, whatever it is."""
    router = busy()
    before = kv_state(router)
    for slot, raw in enumerate(
        (
            [17, [], [[15, b"k", b"1"], [15, b"k", b"2"]]],
            [17, [[9, 0, b"k", 1]]],
            [14, b""],
            [18, "1"],
        ),
        start=100,
    ):
        answer, _ = router.apply(slot, msgpack.packb(raw))
        assert isinstance(answer, Error) and answer.code == "bad_command", answer
    assert kv_state(router) == before
    with pytest.raises(BadCommand):
        router.read(Txn(success=(Put(key=b"k"),)))  # not a read


def test_every_applied_command_hands_its_events_to_the_host() -> None:
    """The engine's learner passes each command's events on in Applied.events, in log order."""
    router = Router()
    learner = Learner(router)
    batch = (
        encode(Request(client_id="c", seq=1, op=Put(key=b"a", value=b"1"))),
        encode(Request(client_id="c", seq=2, op=DeleteRange(key=b"a"))),
        encode(Request(client_id="c", seq=3, op=Range(key=b"a"))),
    )
    learner.learn(1, batch)
    applied = learner.advance()
    assert [[e.type for e in entry.events] for entry in applied] == [
        [EventType.PUT],
        [EventType.DELETE],
        [],
    ]
    assert applied[1].events[0].revision == 3
