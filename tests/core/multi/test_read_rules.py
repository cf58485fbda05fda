"""A follower's read is the leader's to confirm: it goes to the leader as ReadIndex (never
answered from the follower's own state, which may be behind), and a read the leader refuses
to confirm (it no longer leads) is refused, never answered."""

from __future__ import annotations

from paxosd.core.multi.messages import ReadIndex, ReadIndexReply
from paxosd.core.types import Envelope
from paxosd.service import Get

from .harness import Net, put


def _follower_read(net: Net) -> None:
    net.elect(1)
    net.call(1, lambda r: r.propose(put("x", 1)))
    net.deliver_all()
    net.call(2, lambda r: r.read(7, Get(key="x")))


def test_a_followers_read_goes_to_the_leader_not_to_its_own_state() -> None:
    net = Net()
    _follower_read(net)
    ready = net.turn(2)
    assert ready.reads == (), "the follower answered from its own state"
    asked = [e for e in net.inbox if isinstance(e.msg, ReadIndex)]
    assert [(e.src, e.dst) for e in asked] == [(2, 1)]


def test_a_read_the_leader_refuses_to_confirm_is_refused() -> None:
    net = Net()
    _follower_read(net)
    net.turn(2)
    net.drop(lambda e: isinstance(e.msg, ReadIndex))
    net.step(2, Envelope(1, 2, ReadIndexReply(read_id=7, index=-1)))
    assert net.reads[2] == [(7, False)], "a refused read was answered"
