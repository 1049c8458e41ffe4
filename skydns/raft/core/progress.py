"""What a leader tracks: each follower's log (etcd's ``Progress``) and the
ReadIndex requests waiting for a heartbeat quorum (`ReadOnly`).

A follower is *probed* (one AppendEntries in flight, waiting for an answer
that says where its log matches) until it acknowledges an index; then it is
*replicated* (entries are pipelined optimistically, bounded by a window of
``max_inflight`` unacknowledged messages).  A rejection sends it back to
probing.  ``SNAPSHOT`` is for followers whose next entry has been compacted away:
nothing more is sent until they acknowledge the snapshot (or it times out
and is sent again).
"""

from __future__ import annotations

import enum
from collections import deque

from attrs import define, field, frozen


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@define
class Inflights:
    """The last index of each AppendEntries sent but not yet acknowledged."""

    capacity: int
    _indexes: deque[int] = field(factory=deque)

    def full(self) -> bool:
        return len(self._indexes) >= self.capacity

    def add(self, last_index: int) -> None:
        self._indexes.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose entries the follower now holds."""
        while self._indexes and self._indexes[0] <= index:
            self._indexes.popleft()

    def free_first(self) -> None:
        """Make room for one more message (its answer was probably lost)."""
        if self._indexes:
            self._indexes.popleft()

    def reset(self) -> None:
        self._indexes.clear()

    def __len__(self) -> int:
        return len(self._indexes)


@define
class Progress:
    match: int
    next: int
    inflights: Inflights
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    #: The leader's tick at which it last heard from this peer (CheckQuorum).
    last_active_tick: int = 0
    pending_snapshot: int = 0
    #: The leader's tick at which the pending snapshot was sent.
    snapshot_tick: int = 0
    #: The follower says its log may lack entries it acknowledged: its
    #: match does not count towards commits until it says otherwise.
    recovering: bool = False

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.inflights.reset()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.probe_sent = False
        self.inflights.reset()

    def become_snapshot(self, index: int, tick: int = 0) -> None:
        self.state = ProgressState.SNAPSHOT
        self.pending_snapshot = index
        self.snapshot_tick = tick
        self.probe_sent = False
        self.inflights.reset()

    def paused(self) -> bool:
        """Whether the leader should hold off sending entries."""
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def sent(self, last_index: int, count: int) -> None:
        """Record an AppendEntries carrying ``count`` entries up to ``last_index``."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """The follower holds everything up to ``index``; False if stale."""
        updated = False
        if index > self.match:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, hint: int) -> bool:
        """A rejection of ``prev_log_index == rejected``; False if stale.

        ``hint`` is the highest index that may still match (from the
        follower's conflict hint, already mapped onto the leader's log).
        """
        if self.state is ProgressState.REPLICATE:
            # Rejections of indexes at or below match are old news.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # Probing: only the answer to the probe we sent counts.
        if self.next - 1 != rejected:
            return False
        before, self.next = self.next, max(min(rejected, hint + 1), self.match + 1, 1)
        self.probe_sent = False
        # A follower rejecting what it acknowledged lost it: sending the same
        # probe again at once would only be rejected again, at wire speed.
        return self.next != before


# --- ReadIndex requests waiting for a heartbeat quorum (thesis §6.4) ---------
#
# A read request records the commit index at the time it arrives, then waits
# until a quorum of voters has answered a heartbeat carrying the request's
# context: only then is the leader sure it was still the leader when the read
# arrived, and the recorded index is a safe point to read at.  Requests are
# confirmed in arrival order, so one quorum of acknowledgements for a later
# request confirms every earlier one too.


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
