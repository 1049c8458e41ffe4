"""The registry's leases (SPEC.md §7): each one's TTL, when it ends as the
log last recorded, and the instances that live by it.

A lease ends at ``expires``; the leader moves that later with `Checkpoint`
commands as renewals come in (`skydns.leases`), so the recorded end trails
the leader's by at most a checkpoint period.  The instances of a lease
carry the lease's end as their own ``expires``, so every reader of an
instance (DNS TTLs, GET, expiry) sees one time.
"""

from __future__ import annotations

from collections.abc import Iterator

from attrs import define, field, frozen


@frozen
class Lease:
    """One lease as the log recorded it."""

    id: str
    ttl: int
    expires: float

    def alive(self, now: float) -> bool:
        """Whether the lease still runs at ``now``."""
        return now < self.expires

    def remaining(self, now: float) -> float:
        """Seconds left at ``now`` (0 once it has run out)."""
        return max(0.0, self.expires - now)


@define
class LeaseTable:
    """Every lease of one registry and the UUID keys of its instances."""

    _leases: dict[str, Lease] = field(factory=dict)
    _members: dict[str, set[str]] = field(factory=dict)

    def __len__(self) -> int:
        return len(self._leases)

    def __iter__(self) -> Iterator[Lease]:
        """The leases in ID order (snapshots are deterministic)."""
        return (self._leases[k] for k in sorted(self._leases))

    def get(self, lease_id: str) -> Lease | None:
        """The lease with this ID, run out or not; None if there is none."""
        return self._leases.get(lease_id)

    def put(self, lease: Lease) -> None:
        """Hold ``lease`` (new, or a new end for one held)."""
        self._leases[lease.id] = lease
        self._members.setdefault(lease.id, set())

    def pop(self, lease_id: str) -> tuple[Lease, list[str]]:
        """Drop a held lease; it and its instances' keys, sorted."""
        lease = self._leases.pop(lease_id)
        return lease, sorted(self._members.pop(lease_id, ()))

    def members(self, lease_id: str) -> list[str]:
        """The UUID keys of the instances living by ``lease_id``, sorted."""
        return sorted(self._members.get(lease_id, ()))

    def attach(self, lease_id: str, key: str) -> None:
        self._members.setdefault(lease_id, set()).add(key)

    def detach(self, lease_id: str, key: str) -> None:
        members = self._members.get(lease_id)
        if members is not None:
            members.discard(key)

    def lapsed(self, now: float) -> list[str]:
        """IDs of the leases run out at ``now``, earliest end first."""
        ended = [lease for lease in self._leases.values() if not lease.alive(now)]
        return [lease.id for lease in sorted(ended, key=lambda e: (e.expires, e.id))]
