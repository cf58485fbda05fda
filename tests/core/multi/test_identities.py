"""Identities of members that joined through the log (core/multi/configuration.py): a joined
member is recorded with the incarnation of the store it joined with, every change carries the
records of the members that stay, and a peer with another incarnation under a recorded id is
refused (its store was lost: it never votes with state it has lost)."""

from __future__ import annotations

import pytest

from paxosd.core.multi.configuration import Configuration, Joined
from paxosd.core.multi.messages import Stale
from paxosd.core.multi.reconfigure import Reconfigure, decode
from paxosd.core.multi.records import Configured
from paxosd.runtime import codec as wire
from paxosd.storage.codec import decode_record, encode_record

from .harness import Net

NEW = Joined(3, 0x5EED, "peer=127.0.0.1:7003")


def test_only_a_recorded_member_with_another_incarnation_is_refused() -> None:
    configuration = Configuration((1, 2), (3,), epoch=2, joined=(NEW,))
    assert configuration.admits(3, 0x5EED) is None
    assert configuration.admits(1, 12345) is None, "founding members carry no record"
    refused = configuration.admits(3, 0xBAD)
    assert refused is not None and "5eed" in refused and "paxosd member remove 3" in refused
    assert configuration.admits(3, None) is not None


@pytest.mark.parametrize(
    "joined",
    [
        (Joined(4, 1),),  # not a member
        (Joined(3, 2), Joined(1, 1)),  # not sorted
        (Joined(3, 2), Joined(3, 3)),  # twice
        ((3, 2, ""),),  # not a Joined
    ],
)
def test_malformed_identities_are_refused(joined: tuple[Joined, ...]) -> None:
    with pytest.raises(ValueError):
        Configuration((1, 2), (3,), epoch=1, joined=joined)


@pytest.mark.parametrize(
    "fields", [(3, 0, ""), (3, 1 << 63, ""), (3, 1, "x" * 513), (-1, 1, ""), (3, "1", "")]
)
def test_malformed_joined_entries_are_refused(fields: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        Joined(*fields)  # type: ignore[arg-type]


def test_identities_survive_the_log_the_store_and_the_wire() -> None:
    configuration = Configuration((1, 2), (3,), epoch=4, first_slot=90, joined=(NEW,))
    change = Reconfigure(Configuration((1, 2), (3,), epoch=4, joined=(NEW,)))
    assert decode(change.encode()) == change
    record = Configured(configuration)
    assert decode_record(encode_record(record)) == record
    stale = Stale(configuration=configuration)
    assert wire.decode(wire.encode(stale)[4:]) == stale


def test_a_node_rejoins_as_a_new_member_and_its_record_follows_every_later_change() -> None:
    net = Net()
    net.elect(1)
    joining = Joined(3, 0xA11CE, "peer=127.0.0.1:7003")
    refused = net.call(1, lambda r: r.change_members((1, 2), (3,), joining))
    assert "member already" in refused and "remove it first" in refused, refused
    assert net.call(1, lambda r: r.change_members((1, 2))) == ""
    net.deliver_all()
    leader = None
    for _ in range(60):
        leader = next((n for n in (1, 2) if net.replicas[n].leading), None)
        if leader is not None:
            break
        for node in (1, 2):
            net.call(node, lambda r: r.tick())
        net.deliver_all()
    assert leader is not None
    refused = net.call(leader, lambda r: r.change_members((1, 2, 3), (), joining))
    assert "name it among the learners" in refused, refused
    assert net.call(leader, lambda r: r.change_members((1, 2), (3,), joining)) == ""
    net.deliver_all()
    for node in (1, 2):
        configuration = net.replicas[node].configuration
        assert (configuration.epoch, configuration.joined) == (2, (joining,)), node
    # The leader promotes the caught-up learner: the record stays with it as a voter.
    for _ in range(60):
        for node in (1, 2, 3):
            net.call(node, lambda r: r.tick())
        net.deliver_all()
    promoted = net.replicas[1].configuration
    assert (promoted.voters, promoted.joined) == ((1, 2, 3), (joining,))
    assert promoted.admits(3, 0xA11CE) is None and promoted.admits(3, 0x01D) is not None
