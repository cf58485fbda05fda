"""The engine's bounded command queue, and quorums read from the `Configuration` value."""

from __future__ import annotations

import pytest

from paxosd.core.multi.config import EngineConfig
from paxosd.core.multi.configuration import Configuration
from paxosd.core.multi.queue import CommandQueue
from paxosd.core.multi.read_index import ReadIndex
from paxosd.core.multi.ready import Proposal

from .harness import Net, put


def test_a_full_queue_refuses_rather_than_grows() -> None:
    queue = CommandQueue(commands_max=3, bytes_max=10)
    assert queue.offer(b"aaaa") and queue.offer(b"bbbb")
    assert not queue.offer(b"ccc"), "11 bytes would pass the 10-byte limit"
    assert queue.offer(b"cc")
    assert not queue.offer(b""), "a fourth command would pass the count limit"
    assert (len(queue), queue.bytes) == (3, 10)
    assert queue.take(count_max=2, bytes_max=100) == [b"aaaa", b"bbbb"]
    assert (len(queue), queue.bytes) == (1, 2)
    assert queue.drain() == [b"cc"] and not queue and queue.bytes == 0


def test_a_batch_takes_at_least_one_command_and_stops_at_its_byte_limit() -> None:
    queue = CommandQueue(commands_max=10, bytes_max=100)
    for command in (b"x" * 30, b"y" * 30, b"z" * 30):
        assert queue.offer(command)
    assert queue.take(count_max=10, bytes_max=10) == [b"x" * 30]  # one, however large
    assert queue.take(count_max=10, bytes_max=60) == [b"y" * 30, b"z" * 30]


def test_the_leader_and_a_follower_refuse_past_the_queue_limit() -> None:
    config = EngineConfig(queue_commands_max=2)
    net = Net(config=config)
    net.elect(1)
    for node in (1, 2):
        outcomes = [
            net.call(node, lambda r, s=seq: r.propose(put("k", s, seq=s))) for seq in (1, 2, 3)
        ]
        assert outcomes[-1] is Proposal.QUEUE_FULL, node
        assert outcomes[0] in (Proposal.QUEUED, Proposal.FORWARDED)


def test_a_read_is_confirmed_by_a_quorum_of_voters_only() -> None:
    """Read confirmation asks the configuration: acknowledgements from learners (who never
    promise anything) prove nothing about who leads."""
    configuration = Configuration(voters=(1, 2, 3), learners=(4, 5))
    reads = ReadIndex(configuration, 1)
    reads.request(7, index=3)
    needed = reads.start_round()
    reads.ack(4, needed)
    reads.ack(5, needed)
    assert reads.take_confirmed() == []
    reads.ack(3, needed)
    assert reads.take_confirmed() == [(7, 3)]


def test_five_voters_need_three_for_a_read() -> None:
    reads = ReadIndex(Configuration((1, 2, 3, 4, 5)), 1)
    reads.request(1, index=0)
    round_ = reads.start_round()
    reads.ack(2, round_)
    assert reads.take_confirmed() == []
    reads.ack(5, round_)
    assert reads.take_confirmed() == [(1, 0)]


def test_a_replica_refuses_to_run_for_a_node_outside_its_configuration() -> None:
    import random

    from paxosd.core.multi.replica import Replica
    from paxosd.service import StateMachine

    for node, configuration in ((4, Configuration((1, 2, 3))), (4, Configuration((1, 2), (4,)))):
        with pytest.raises(AssertionError, match="voters"):
            Replica(node, configuration, random.Random(0), EngineConfig(), StateMachine())


def test_a_read_id_that_is_already_outstanding_is_a_bug_of_the_caller() -> None:
    from paxosd.service import Get

    net = Net()
    net.elect(1)
    net.call(1, lambda r: r.read(5, Get(key="x")))
    with pytest.raises(AssertionError, match="already outstanding"):
        net.call(1, lambda r: r.read(5, Get(key="x")))


def test_a_replica_refuses_a_store_made_for_other_members_naming_both() -> None:
    """The store says who the cluster is; a replica started with another member list (a
    config file edited by hand) refuses to run, in the node and in the simulator alike."""
    import random

    from paxosd.core.multi.configuration import ConfigurationMismatch
    from paxosd.core.multi.records import Configured
    from paxosd.core.multi.replica import Replica
    from paxosd.service import StateMachine

    stored = Configuration((1, 2, 3, 4, 5))
    for given in (Configuration((1, 2, 3)), Configuration((1, 2, 3, 4, 5), learners=(6,))):
        with pytest.raises(ConfigurationMismatch) as refused:
            Replica(
                1, given, random.Random(0), EngineConfig(), StateMachine(), [Configured(stored)]
            )
        assert stored.describe() in str(refused.value) and given.describe() in str(refused.value)
    same = Configuration((1, 2, 3, 4, 5), epoch=0)
    Replica(1, same, random.Random(0), EngineConfig(), StateMachine(), [Configured(stored)])
