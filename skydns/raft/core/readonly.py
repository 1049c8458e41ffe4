"""ReadIndex bookkeeping on the leader (Raft thesis §6.4).

A read request records the commit index at the time it arrives, then waits
until a quorum of voters has answered a heartbeat carrying the request's
context: only then is the leader sure it was still the leader when the read
arrived, and the recorded index is a safe point to read at.  Requests are
confirmed in arrival order, so one quorum of acknowledgements for a later
request confirms every earlier one too.
"""

from __future__ import annotations

from attrs import define, field, frozen


@frozen
class ReadState:
    """A read may be served once the state machine has applied ``index``."""

    index: int
    context: bytes


@frozen
class _Pending:
    index: int
    context: bytes
    #: The follower that forwarded the request, or None if it is ours.
    origin: str | None
    acks: set[str]


@define
class ReadOnly:
    _pending: dict[bytes, _Pending] = field(factory=dict)
    _queue: list[bytes] = field(factory=list)

    def add(self, index: int, context: bytes, origin: str | None, self_id: str) -> bool:
        """Queue a request; False if one with this context is already queued."""
        if context in self._pending:
            return False
        self._pending[context] = _Pending(index, context, origin, {self_id})
        self._queue.append(context)
        return True

    def ack(self, context: bytes, voter: str) -> set[str]:
        """Record ``voter``'s acknowledgement; return who has acknowledged."""
        pending = self._pending.get(context)
        if pending is None:
            return set()
        pending.acks.add(voter)
        return pending.acks

    def release(self, context: bytes) -> list[tuple[int, bytes, str | None]]:
        """Confirm ``context`` and everything queued before it."""
        if context not in self._pending:
            return []
        released = []
        while self._queue:
            head = self._queue.pop(0)
            pending = self._pending.pop(head)
            released.append((pending.index, pending.context, pending.origin))
            if head == context:
                break
        return released

    def last_context(self) -> bytes | None:
        return self._queue[-1] if self._queue else None

    def clear(self) -> None:
        self._pending.clear()
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
