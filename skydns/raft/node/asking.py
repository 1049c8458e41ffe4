"""Requests of the application on top that only the leader can answer,
passed to it without a log entry (`LeaderRequests`).

The application serves them on whichever node leads (`serve`) and asks from
any node (`ask`): a leader answers itself, a follower passes the bytes to
the leader it knows.  Raft gives them no ordering or durability; what the
answer means is the application's (SkyDNS's lease renewals: the leader
keeps the deadlines in memory and checkpoints them to the log).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.python.failure import Failure

from skydns.raft.core.ready import Role
from skydns.raft.net.interface import NotLeaderHere, PeerUnavailable
from skydns.raft.node.condition import Condition
from skydns.raft.node.errors import Unavailable
from skydns.raft.node.gate import CoreGate

#: What answers a request on the leader: its bytes to the answer's.
Handler = Callable[[bytes], "Deferred[bytes]"]
#: Passes a request to a member: (member, data) -> its answer.
Ask = Callable[[str, bytes], "Deferred[bytes]"]


class LeaderRequests:
    """One node's side of the application's leader requests."""

    def __init__(self, node_id: str, gate: CoreGate, condition: Condition, ask: Ask) -> None:
        self.id = node_id
        self.gate = gate
        self.condition = condition
        self._ask = ask
        self._handler: Handler | None = None

    def serve(self, handler: Handler) -> None:
        """Answer the requests that reach this node while it leads with ``handler``."""
        self._handler = handler

    def answer(self, data: bytes) -> Deferred[bytes]:
        """A request for this node as leader; errbacks `NotLeaderHere` if it
        does not lead (or serves no such requests)."""
        core = self.gate.core
        if (
            self.condition.refusal() is not None
            or core.role is not Role.LEADER
            or self._handler is None
        ):
            leader = core.leader
            return fail(NotLeaderHere(None if leader == self.id else leader))
        return maybeDeferred(self._handler, data)

    def ask(self, data: bytes) -> Deferred[bytes]:
        """Have the leader answer ``data``.  Errbacks `Unavailable` when no
        leader is known or it cannot be reached (the caller retries)."""
        refusal = self.condition.refusal()
        if refusal is not None:
            return fail(Unavailable(refusal))
        core = self.gate.core
        if core.role is Role.LEADER:
            asked = self.answer(data)
        elif core.leader is None or core.leader == self.id:
            return fail(Unavailable("no leader is known"))
        else:
            asked = self._ask(core.leader, data)

        def unavailable(failure: Failure) -> Failure:
            if failure.check(NotLeaderHere, PeerUnavailable):
                return Failure(Unavailable(failure.getErrorMessage() or "the leader changed"))
            return failure

        return asked.addErrback(unavailable)
