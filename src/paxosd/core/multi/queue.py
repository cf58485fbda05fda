"""A bounded queue of client commands: the leader's (commands waiting for a slot) and a
follower's (commands waiting for the next Forward to the leader), and Forward between them.

Theory of operation. Every command that enters either queue goes through `offer`, which
refuses it past the limits (`queue_commands_max`, `queue_bytes_max`) instead of holding it:
the client is told at once (`Proposal.QUEUE_FULL`) and may retry, where an unbounded queue
would only turn overload into memory exhaustion. The byte count moves with every command in
and out, so the limit is checked in constant time.

A follower forwards its queue to the leader it knows at the end of each turn, in Forward
messages of at most `forward_bytes_max` each. A leader whose queue is full drops the rest of a
Forward (noted): the clients behind it time out and retry. A Forward that reaches a node that
does not lead is dropped the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from paxosd.core.multi.messages import Forward
from paxosd.core.types import NodeId

if TYPE_CHECKING:
    from paxosd.core.multi.replica import Replica


class CommandQueue:
    __slots__ = ("bytes", "bytes_max", "commands", "commands_max")

    def __init__(self, commands_max: int, bytes_max: int) -> None:
        self.commands: deque[bytes] = deque()
        self.bytes = 0
        self.commands_max = commands_max
        self.bytes_max = bytes_max

    def offer(self, command: bytes) -> bool:
        """Queue `command` if there is room for it; whether it was queued."""
        if len(self.commands) >= self.commands_max or self.bytes + len(command) > self.bytes_max:
            return False
        self.commands.append(command)
        self.bytes += len(command)
        return True

    def take(self, count_max: int, bytes_max: int) -> list[bytes]:
        """Up to `count_max` commands from the front, at most `bytes_max` bytes of them (but
        at least one, whatever its size: a command that fits the queue fits a batch)."""
        commands = self.commands
        taken: list[bytes] = []
        size = 0
        while commands and len(taken) < count_max:
            command = commands[0]
            if size and size + len(command) > bytes_max:
                break
            commands.popleft()
            taken.append(command)
            size += len(command)
        self.bytes -= size
        return taken

    def drain(self) -> list[bytes]:
        """Every command, oldest first; the queue is empty afterwards."""
        taken = list(self.commands)
        self.commands.clear()
        self.bytes = 0
        return taken

    def __len__(self) -> int:
        return len(self.commands)

    def __bool__(self) -> bool:
        return bool(self.commands)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.commands)


def forward(replica: Replica, leader: NodeId) -> None:
    """Send the follower's whole queue to `leader`."""
    commands: list[bytes] = []
    size = 0
    for command in replica.forward_queue.drain():
        if commands and size + len(command) > replica.config.forward_bytes_max:
            replica.out.send(leader, Forward(commands=tuple(commands)))
            commands, size = [], 0
        commands.append(command)
        size += len(command)
    if commands:
        replica.out.send(leader, Forward(commands=tuple(commands)))


def on_forward(replica: Replica, src: NodeId, msg: Forward) -> None:
    lead = replica.leading
    if lead is None:
        return  # the clients behind it will time out and retry
    for command in msg.commands:
        if not lead.queue.offer(command):
            replica.out.note("forward_dropped", src=src, commands=len(msg.commands))
            return
