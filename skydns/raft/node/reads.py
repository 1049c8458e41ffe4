"""Linearizable reads on a Raft node (ReadIndex, thesis §6.4).

A read barrier asks the core for a read index (the leader confirms its
leadership with a heartbeat round; a follower asks the leader) and fires
once this node has applied up to that index: whatever the caller reads from
its local state after that reflects every write committed before the call.
"""

from __future__ import annotations

from typing import Callable

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from skydns.raft.core.raft import RaftCore
from skydns.raft.core.ready import NotLeader, ReadState
from skydns.raft.node.errors import Unavailable
from skydns.raft.node.gate import CoreGate


@define(eq=False)
class Read:
    context: bytes
    deferred: Deferred[None] = field(init=False)
    timeout: IDelayedCall | None = None
    index: int | None = None
    issued_at: float = 0.0


class Reads:
    """The read barriers of one node waiting for their index."""

    def __init__(
        self,
        context_prefix: str,
        gate: CoreGate,
        clock: IReactorTime,
        applied: Callable[[], int],
        timeout: float,
        retry_interval: float,
    ) -> None:
        self.context_prefix = context_prefix
        self.retry_interval = retry_interval
        self.gate = gate
        self.clock = clock
        self.applied = applied
        self.timeout = timeout
        self.pending: dict[bytes, Read] = {}
        self._counter = 0

    def barrier(self) -> Deferred[None]:
        self._counter += 1
        read = Read(f"{self.context_prefix}/{self._counter}".encode())
        read.deferred = Deferred(lambda _: self._forget(read))
        read.timeout = self.clock.callLater(
            self.timeout, self.finish, read, Failure(Unavailable("no read index in time"))
        )
        self.pending[read.context] = read
        self.issue(read)
        return read.deferred

    def issue(self, read: Read) -> None:
        read.issued_at = self.clock.seconds()

        def ask(core: RaftCore) -> None:
            if read.context not in self.pending:
                return
            try:
                core.read_index(read.context)
            except NotLeader:
                pass  # issued again when a leader is known

        self.gate.run(ask)

    def serve(self, states: tuple[ReadState, ...]) -> None:
        """Note the read indexes a Ready handed out."""
        applied = self.applied()
        for state in states:
            read = self.pending.get(state.context)
            if read is None or read.index is not None:
                continue
            read.index = state.index
            if state.index <= applied:
                self.finish(read, None)

    def applied_to(self, index: int) -> None:
        """Answer the reads whose index ``index`` has reached."""
        for read in [r for r in self.pending.values() if r.index is not None and r.index <= index]:
            self.finish(read, None)

    def reissue(self, everything: bool) -> None:
        """Ask again for the reads with no index yet: all of them after a
        leader change, else those that waited the retry interval."""
        now = self.clock.seconds()
        for read in list(self.pending.values()):
            if read.index is None and (everything or now - read.issued_at >= self.retry_interval):
                self.issue(read)

    def _forget(self, read: Read) -> None:
        if self.pending.pop(read.context, None) is not None:
            if read.timeout is not None and read.timeout.active():
                read.timeout.cancel()

    def finish(self, read: Read, failure: Failure | None) -> None:
        if read.context not in self.pending:
            return
        self._forget(read)
        if failure is None:
            read.deferred.callback(None)
        else:
            read.deferred.errback(failure)

    def fail_all(self, reason: str) -> None:
        for read in list(self.pending.values()):
            self.finish(read, Failure(Unavailable(reason)))
