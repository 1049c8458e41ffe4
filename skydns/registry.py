"""The registry: the deterministic state machine the Raft log drives.

It applies `skydns.commands` values given the time each one carries, keeps an
index by (environment, name) so a lookup that fixes both never scans every
instance, and serialises itself to bytes for snapshots.  It never reads a
clock: readers pass ``now``.

SKELETON: the signatures below are the contract other modules build on.
"""

from __future__ import annotations

from typing import Callable, Optional

from attrs import define, frozen

from skydns.commands import Command
from skydns.names import Callback, Pattern, Service


@frozen
class Instance:
    """A registered service with its lease."""

    service: Service
    expires: float  # absolute time; ignored when service.no_expire

    def remaining(self, now: float) -> float:
        """Seconds left on the lease (``service.ttl`` for NoExpire instances)."""
        if self.service.no_expire:
            return float(self.service.ttl)
        return max(0.0, self.expires - now)

    def alive(self, now: float) -> bool:
        """Whether the lease still runs at ``now`` (it ends at ``expires``)."""
        return self.service.no_expire or now < self.expires


@frozen
class Removal:
    """An instance that left the registry, and the callbacks it had."""

    instance: Instance
    callbacks: tuple[Callback, ...]


@frozen
class Applied:
    """The result of applying one command.

    ``status`` is ``"ok"``, ``"conflict"`` (Register of an existing UUID) or
    ``"not_found"``.  ``removals`` lists instances removed by this command
    (Unregister, Expire) with their callbacks, so the leader can notify.
    """

    status: str
    removals: tuple[Removal, ...] = ()


@define
class Registry:
    """All instances, indexed for lookups."""

    #: Bumped on every change; answer caches key on it.
    version: int = 0

    def apply(self, command: Command) -> Applied:
        raise NotImplementedError

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change (cache invalidation)."""
        raise NotImplementedError

    def get(self, uuid: str, now: float) -> Optional[Instance]:
        """The live instance with this UUID (case-insensitive), or None."""
        raise NotImplementedError

    def query(self, pattern: Pattern, now: float) -> list[Instance]:
        """Live instances matching ``pattern``, in a stable order (by UUID)."""
        raise NotImplementedError

    def failover(self, pattern: Pattern, now: float) -> list[Instance]:
        """Live instances matching ``pattern`` in every position but region,
        and not in ``pattern.region`` (SRV region failover, priority 20)."""
        raise NotImplementedError

    def exists(self, pattern: Pattern, now: float) -> bool:
        """Whether any live instance matches (NXDOMAIN vs NODATA)."""
        raise NotImplementedError

    def regions(self, now: float) -> dict[str, int]:
        raise NotImplementedError

    def environments(self, now: float) -> dict[str, int]:
        raise NotImplementedError

    def expired(self, now: float) -> list[str]:
        """UUIDs whose lease ran out at ``now`` (for the leader's Expire)."""
        raise NotImplementedError

    def by_address(self, address: str, now: float) -> list[Instance]:
        """Live instances whose Host is this IP literal (reverse lookups)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def snapshot(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def restore(cls, data: bytes) -> "Registry":
        raise NotImplementedError
