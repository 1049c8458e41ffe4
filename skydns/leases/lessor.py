"""The leader's lease deadlines (`Lessor`): renewals held in memory, written
to the log only as checkpoints at a bounded rate.

A renewal moves a deadline in this process's memory, never the log.  The
log holds each lease's end as last recorded (`skydns.registry.leasing`),
and every node's reads hide an instance once that end has passed, so the
leader records a later end (a `Checkpoint`) for each renewed lease whose
recorded end comes within its client's renewal interval plus ``margin``
(a leader election and a sweep): a lease kept alive always has a recorded
end ahead, even when the leader dies just before the next renewal, and
one let go lapses at its last renewal plus its TTL, on every node.  The
checkpoints of one sweep go in one log entry, so the log takes at most an
entry or two per sweep however many renewals arrive.

A new leader starts with no deadlines: it trusts the recorded ends and
expires nothing for its grace period after taking over, so the renewals
that went to the old leader reach it first (SPEC.md §7).
"""

from __future__ import annotations

from typing import Callable, Optional

from skydns.clock import Clock
from skydns.leases.renewal import (
    INSTANCE,
    LEASE,
    NEEDS_LOG,
    NOT_FOUND,
    Renewal,
    decode_renewals,
    encode_answers,
)
from skydns.registry import Registry

#: Seconds of recorded lease a checkpoint keeps ahead at least, whatever
#: the TTL: more than a leader election and a round of replication.
DEFAULT_MARGIN = 3.0

Key = tuple[str, str]


class _Held:
    """A renewed deadline: its TTL, when it was last renewed, and the
    interval its renewals come at (a third of the TTL until two have been
    seen: what clients are told to use; a longer gap raises it at once, a
    shorter one lowers it by a tenth)."""

    __slots__ = ("deadline", "ttl", "renewed", "interval")

    def __init__(self, deadline: float, ttl: int, renewed: float) -> None:
        self.deadline, self.ttl, self.renewed = deadline, ttl, renewed
        self.interval = ttl / 3.0
#: (lease ID or UUID, end) pairs for a `Checkpoint`.
Ends = list[tuple[str, float]]


class Lessor:
    """One node's deadlines, valid while it leads in one term.

    ``leadership()`` names the current leadership (e.g. the term while this
    node leads, None otherwise): when it changes, the deadlines are
    forgotten and the grace period starts again.
    """

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        leadership: Callable[[], object],
        grace: float = 1.0,
        margin: float = DEFAULT_MARGIN,
        monotonic: Optional[Callable[[], float]] = None,
    ) -> None:
        """``clock`` gives the time commands carry (the wall clock, which the
        log's lease ends are in); ``monotonic`` (``clock.seconds`` unless
        given: ``time.monotonic`` in a node) times the deadlines held here,
        so that a step of the wall clock neither ends nor stretches them."""
        self.registry = registry
        self.clock = clock
        self.monotonic = monotonic or clock.seconds
        self.leadership = leadership
        self.grace = grace
        self.margin = margin
        self._deadlines: dict[Key, _Held] = {}
        self._token: object = None
        self.leading_since = 0.0

    def _current(self, now: float) -> bool:
        """Whether this node leads; forgets everything if that changed."""
        token = self.leadership()
        if token != self._token:
            self._token = token
            self._deadlines.clear()
            self.leading_since = now
        return token is not None

    def renew(self, renewals: list[Renewal]) -> list[Optional[int]]:
        """Take ``renewals`` (on the leader): each one's answer."""
        now = self.clock.seconds()
        if not self._current(now):
            raise NotLeading("this node does not lead")
        mono = self.monotonic()
        return [self._renew(renewal, now, mono) for renewal in renewals]

    def answer(self, data: bytes) -> bytes:
        """Renewals passed to this leader as bytes, answered as bytes;
        ValueError if they do not decode, `NotLeading` off the leader."""
        return encode_answers(self.renew(decode_renewals(data)))

    def _renew(self, renewal: Renewal, now: float, mono: float) -> Optional[int]:
        """A lease or instance renews if the log's end for it has not come,
        or this leader holds it alive (its checkpoint is on the way)."""
        registry = self.registry
        if renewal.kind == LEASE:
            lease = registry.lease_held(renewal.key)
            if lease is None or not (lease.alive(now) or self._alive((LEASE, lease.id), mono)):
                return NOT_FOUND
            self._hold((LEASE, lease.id), mono, lease.ttl)
            return lease.ttl
        instance = registry.held(renewal.key)
        key = (INSTANCE, renewal.key.lower())
        if instance is None or not (instance.alive(now) or self._alive(key, mono)):
            return NOT_FOUND
        service = instance.service
        if service.lease:
            return self._renew(Renewal(LEASE, service.lease), now, mono)
        if service.no_expire or service.ttl != renewal.ttl:
            return NEEDS_LOG
        self._hold(key, mono, service.ttl)
        return service.ttl

    def _hold(self, key: Key, mono: float, ttl: int) -> None:
        held = self._deadlines.get(key)
        if held is None:
            self._deadlines[key] = _Held(mono + ttl, ttl, mono)
            return
        if mono > held.renewed:
            # A shorter gap (a retry, a second client) lowers the interval
            # only slowly: the client's next renewal may be a whole one away.
            held.interval = max(mono - held.renewed, held.interval * 0.9)
            held.renewed = mono
        held.deadline, held.ttl = max(held.deadline, mono + ttl), ttl

    def _alive(self, key: Key, mono: float) -> bool:
        held = self._deadlines.get(key)
        return held is not None and held.deadline > mono

    def holds(self, kind: str, key: str) -> bool:
        """Whether a renewal this leader took keeps ``key`` alive now (its
        recorded end may have passed while a checkpoint waits)."""
        return self._alive((kind, key.lower() if kind == INSTANCE else key), self.monotonic())

    def may_expire(self, now: float) -> bool:
        """Whether this node leads and its grace period is over."""
        return self._current(now) and now >= self.leading_since + self.grace

    def due(self, now: float, limit: int, everything: bool = False) -> tuple[Ends, Ends]:
        """What to checkpoint now: (lease ID, end) and (UUID, end) pairs,
        those whose recorded end comes first, at most ``limit`` in all
        (``everything``: each held deadline later than the recorded end,
        due or not).  Deadlines run out, or of something gone, are forgotten."""
        if not self._current(now):
            return [], []
        wanted: list[tuple[float, str, str, float]] = []
        forget = []
        registry = self.registry
        mono = self.monotonic()
        for key, held in self._deadlines.items():
            kind, name = key
            # the deadline on the wall clock the log's ends are in
            deadline = now + (held.deadline - mono)
            if kind == LEASE:
                lease = registry.lease_held(name)
                recorded = None if lease is None else lease.expires
            else:
                instance = registry.held(name)
                recorded = None if instance is None else instance.expires
            if recorded is None or deadline <= now:
                forget.append(key)  # gone, or let go: the sweep expires it
            elif deadline > recorded and (
                everything or recorded - now < min(held.ttl, held.interval + self.margin)
            ):
                wanted.append((recorded, kind, name, deadline))
        for key in forget:
            del self._deadlines[key]
        wanted.sort()
        leases = [(name, end) for _, kind, name, end in wanted[:limit] if kind == LEASE]
        instances = [(name, end) for _, kind, name, end in wanted[:limit] if kind == INSTANCE]
        return leases, instances

    def __len__(self) -> int:
        return len(self._deadlines)


class NotLeading(Exception):
    """A renewal reached a node that does not lead (any more)."""
