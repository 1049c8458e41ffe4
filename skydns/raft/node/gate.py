"""The core, guarded: when it may be stepped.

While a Ready's save runs off the reactor thread, the core must not be
touched until that Ready is advanced: a message stepped meanwhile could
truncate entries being saved, or count a follower's acknowledgement towards
a commit before the leader's own copy is durable.  So whatever would step
the core in that time (messages, ticks, proposals, reads, membership
changes) waits here, and runs in arrival order once the save is done.
"""

from __future__ import annotations

from typing import Callable

from skydns.raft.core.raft import RaftCore

CoreCall = Callable[[RaftCore], object]


class CoreGate:
    """The `RaftCore` of one node and the calls waiting for a save to finish."""

    def __init__(self, core: RaftCore, wake: Callable[[], None]) -> None:
        self.core = core
        #: Arranges for the node's Ready loop to run soon.
        self.wake = wake
        #: True while a Ready's save runs.
        self.saving = False
        self._held: list[CoreCall] = []

    def run(self, call: CoreCall) -> None:
        """Run ``call(core)`` now, or once the save under way is done."""
        if self.saving:
            self._held.append(call)
            return
        call(self.core)
        self.wake()

    def release(self) -> None:
        """The save is done: run the calls held meanwhile, in order."""
        held, self._held = self._held, []
        for call in held:
            call(self.core)

    def drop(self) -> None:
        """Forget the held calls (the node failed or stopped)."""
        self._held = []
