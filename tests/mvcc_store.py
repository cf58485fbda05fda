"""Whether this tree's state machine applies etcd's key-value requests (the MVCC store).

Tests of the interfaces that answer with the store's answers are marked `needs_store`: they
skip, saying why, on a tree whose store predates the MVCC store, and run everywhere else."""

from __future__ import annotations

import pytest

from paxosd.service import StateMachine, encode
from paxosd.service.kv.types import Put, PutResponse


def store_applies_kv_requests() -> bool:
    answer = StateMachine().apply(1, encode(Put(key=b"k", value=b"v")))[0]
    return isinstance(answer, PutResponse)


needs_store = pytest.mark.skipif(
    not store_applies_kv_requests(),
    reason="this tree's key-value store does not apply etcd's requests yet (the MVCC store)",
)
