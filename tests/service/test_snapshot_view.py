"""The snapshot view (`StateMachine.snapshot_view`): a state captured on the event loop,
written later, maybe in another thread, while the machine goes on applying; the streamed
format; older snapshots still load."""

from __future__ import annotations

import io
import threading

import msgpack

from paxosd.service import AdvanceTime, Delete, Put, StateMachine
from paxosd.service.snapshot import frame_bytes_target, seal

from .helpers import Log


def test_a_view_writes_the_state_it_captured_not_what_came_after() -> None:
    log = Log()
    for n in range(50):
        log.request("c", n + 1, Put(key=f"k{n:03d}", value=n))
    before = log.machine.snapshot()
    view = log.machine.snapshot_view()
    log.request("c", 51, Put(key="k000", value="changed"))
    log.request("c", 52, Delete(key="k001"))
    log.run(AdvanceTime(now_ms=5000))
    out = io.BytesIO()
    view.write(out)
    assert out.getvalue() == before
    assert log.machine.snapshot() != before


def test_a_view_written_in_another_thread_while_the_machine_applies() -> None:
    log = Log()
    for n in range(3 * frame_bytes_target // 20 + 7):  # several frames of the store's keys
        log.request("c", n + 1, Put(key=f"key-{(n * 7919) % 100_000:06d}", value=n))
    expected = log.machine.snapshot()
    view = log.machine.snapshot_view()
    out = io.BytesIO()
    writer = threading.Thread(target=view.write, args=(out,))
    writer.start()
    for n in range(500):
        log.request("d", n + 1, Put(key=f"other-{n}", value=n))
    writer.join()
    assert out.getvalue() == expected
    restored = StateMachine.restore(io.BytesIO(expected))
    assert restored.snapshot() == expected


def test_a_version_2_snapshot_still_loads_from_bytes_and_from_a_stream() -> None:
    body = msgpack.packb([7, 100, 1, 0, 10, [["k", 1, 1, 1]], [], [], [], []])
    old = seal(body)
    for source in (old, io.BytesIO(old)):
        machine = StateMachine.restore(source)
        # Revisions one higher: the store starts at 1 now (kv/machine.py).
        assert machine.applied_slot == 7 and machine.revision == 2
    assert StateMachine.restore(machine.snapshot()).snapshot() == machine.snapshot()
