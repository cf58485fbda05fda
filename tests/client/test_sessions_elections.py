"""Client leases, sessions and elections, sync and async, against the HTTP API over a
FakeNode whose log time the tests move: ephemeral keys go with their session, a session
tells the program when it is lost, and an election has one leader at a time, with fencing
tokens that only grow."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from paxosd import AsyncClient, Client
from paxosd.client import ElectionLost, LeaseNotFound, SessionLost
from paxosd.runtime.errors import Unavailable
from tests.api.conftest import Api, FakeNode

wait_s = 20.0


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def endpoint(node: FakeNode) -> Iterator[str]:
    harness = Api(node)
    try:
        yield f"127.0.0.1:{harness.client.server.port}"
    finally:
        harness.close()


def later(client: Client, node: FakeNode, ms: int) -> None:
    """Log time moves on by `ms` (stamped before the next write: one is made)."""
    node.clock_ms += ms
    client.put("clock", node.clock_ms)


def eventually(condition: Any, what: str) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_lease_calls(endpoint: str, node: FakeNode) -> None:
    with Client(endpoint) as client:
        lease = client.grant(5)
        client.put("svc/a", "up", lease=lease)
        assert client.get("svc/a").lease == lease  # type: ignore[union-attr]
        assert client.leases() == [lease]
        assert client.keep_alive(lease) == 5000
        ttl = client.time_to_live(lease, keys=True)
        assert ttl is not None and ttl["keys"] == [{"key": "svc/a"}]
        assert client.revoke(lease) is True and client.get("svc/a") is None
        assert client.revoke(lease) is False and client.time_to_live(lease) is None
        with pytest.raises(LeaseNotFound):
            client.keep_alive(lease)
        with pytest.raises(LeaseNotFound):
            client.put("svc/b", 1, lease=lease)


def test_a_session_s_keys_go_when_it_is_closed(endpoint: str) -> None:
    with Client(endpoint) as client:
        with client.session(ttl=2) as session:
            session.put("workers/a", "up")
            assert client.get("workers/a").lease == session.id  # type: ignore[union-attr]
            assert session.state == "alive" and session.valid_for_s > 1
        assert client.get("workers/a") is None
        assert session.state == "lost" and session.lost.is_set()


def test_a_session_whose_lease_ended_is_lost_and_says_so(endpoint: str, node: FakeNode) -> None:
    lost: list[str] = []
    states: list[str] = []
    with Client(endpoint) as client:
        session = client.session(ttl=0.6, on_lost=lost.append, on_state=states.append)
        session.put("workers/b", "up")
        later(client, node, 601)  # log time passes the lease before any keep-alive
        assert client.get("workers/b") is None
        assert session.lost.wait(wait_s)
        assert len(lost) == 1 and "does not exist" in lost[0] and states[-1] == "lost"
        with pytest.raises(SessionLost):
            session.check()
        session.close()


def test_a_session_without_answers_is_suspended_then_lost(endpoint: str, node: FakeNode) -> None:
    states: list[str] = []
    with Client(endpoint, timeout_s=0.3) as client:
        session = client.session(ttl=0.6, on_state=states.append)
        node.fail = Unavailable("no quorum")
        eventually(lambda: "suspended" in states, "never suspended")
        assert session.lost.wait(wait_s)
        assert states[-2:] == ["suspended", "lost"]
        node.fail = None
        session.close()


def test_one_leader_at_a_time_and_the_next_after_a_resignation(endpoint: str) -> None:
    with Client(endpoint) as client, client.session(ttl=5) as s1, client.session(ttl=5) as s2:
        election = client.election("jobs/leader")
        assert election.leader() is None
        first = election.campaign("node-1", s1)
        assert first.key == f"jobs/leader/{s1.id:x}"
        leader = election.leader()
        assert leader is not None and leader.value == "node-1"
        assert leader.revision == first.token
        won: list[Any] = []
        waiting = threading.Thread(target=lambda: won.append(election.campaign("node-2", s2)))
        waiting.start()
        time.sleep(0.3)
        assert not won  # node-1 still leads
        first.proclaim("node-1b")
        assert election.leader().value == "node-1b"  # type: ignore[union-attr]
        first.resign()
        waiting.join(wait_s)
        assert won and won[0].token > first.token
        assert election.leader().value == "node-2"  # type: ignore[union-attr]
        with pytest.raises(ElectionLost):
            first.proclaim("stale")  # the old leader's actions are refused
        with pytest.raises(TimeoutError):
            election.campaign("node-1", s1, wait_s=0.2)


def test_a_dead_leader_s_session_ends_and_the_next_leads(endpoint: str, node: FakeNode) -> None:
    with Client(endpoint) as client:
        dead = client.session(ttl=0.6)
        election = client.election("e")
        election.campaign("dying", dead)
        dead._stop.set()  # the process died: nobody keeps its lease alive
        with client.session(ttl=5) as alive:
            won: list[Any] = []
            thread = threading.Thread(target=lambda: won.append(election.campaign("next", alive)))
            thread.start()
            time.sleep(0.2)
            assert not won
            later(client, node, 700)  # the dead one's lease ends in log time
            thread.join(wait_s)
            assert won and election.leader().value == "next"  # type: ignore[union-attr]


def test_observe_yields_every_change_of_leader(endpoint: str) -> None:
    with Client(endpoint) as client, client.session(ttl=5) as s1:
        election = client.election("obs")
        seen: list[str | None] = []

        def observe() -> None:
            for leader in election.observe():
                seen.append(None if leader is None else leader.value)
                if len(seen) == 4:
                    return

        thread = threading.Thread(target=observe, daemon=True)
        thread.start()
        eventually(lambda: seen == [None], "no first answer")
        one = election.campaign("a", s1)
        eventually(lambda: seen == [None, "a"], f"saw {seen}")
        one.proclaim("a2")
        eventually(lambda: seen == [None, "a", "a2"], f"saw {seen}")
        one.resign()
        thread.join(wait_s)
        assert seen == [None, "a", "a2", None]


def test_async_sessions_and_elections(endpoint: str, node: FakeNode) -> None:
    async def go() -> None:
        async with AsyncClient(endpoint) as client:
            lost: list[str] = []
            session = await client.session(ttl=0.6, on_lost=lost.append)
            await session.put("a/x", 1)
            election = client.election("a/e")
            leadership = await election.campaign("one", session)
            assert (await election.leader()).value == "one"  # type: ignore[union-attr]
            async with await client.session(ttl=5) as other:
                waiting = asyncio.create_task(election.campaign("two", other))
                await asyncio.sleep(0.2)
                assert not waiting.done()
                node.clock_ms += 601  # log time passes the first session's lease
                await client.put("clock", 1)
                await asyncio.wait_for(session.lost.wait(), wait_s)
                assert lost and leadership.lost
                second = await asyncio.wait_for(waiting, wait_s)
                assert second.token > leadership.token
                assert await client.get("a/x") is None
                await second.resign()
                assert await election.leader() is None
            await session.close()

    asyncio.run(asyncio.wait_for(go(), 60))
