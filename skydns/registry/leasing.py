"""How the lease commands (SPEC.md §7) change the registry: grant, revoke
(a client's DELETE or the leader's expiry) and the leader's checkpoints,
and what readers ask of leases.  A part of `skydns.registry.state.Registry`,
kept apart so that each file holds one concern.

An instance registered with a ``lease`` takes that lease's TTL and end,
follows its checkpoints, and goes when the lease is revoked or lapses; a
lease lapsed but not yet revoked takes no new instance.
"""

from __future__ import annotations

from typing import Optional

from attrs import evolve

from skydns.commands import Checkpoint, GrantLease, RevokeLease
from skydns.names import Service
from skydns.registry.leases import Lease, LeaseTable
from skydns.registry.model import Applied, Instance, Outcome, Removal


class LeaseCommands:
    """The lease part of the registry (a base class of `Registry`)."""

    _instances: dict[str, Instance]
    _lease_table: LeaseTable

    def _remove(self, key: str) -> Removal:
        raise NotImplementedError

    def _changed(self, touched: Optional[tuple[Service, ...]] = None) -> None:
        raise NotImplementedError

    def _leased(self, service: Service, now: float) -> Optional[tuple[Service, float]]:
        """``service`` as registered at ``now`` and when it ends: by its own
        TTL, or by its lease's (None if that lease is gone or ran out)."""
        if not service.lease:
            return service, now + service.ttl
        lease = self._lease_table.get(service.lease)
        if lease is None or not lease.alive(now):
            return None
        return evolve(service, ttl=lease.ttl), lease.expires

    def _grant(self, command: GrantLease) -> Applied:
        held = self._lease_table.get(command.lease)
        if held is not None and held.alive(command.now):
            return Applied(Outcome.CONFLICT)
        removals = self._drop_lease(command.lease) if held is not None else ()
        self._lease_table.put(Lease(command.lease, command.ttl, command.now + command.ttl))
        return Applied(Outcome.OK, removals)

    def _revoke(self, command: RevokeLease) -> Applied:
        removals: list[Removal] = []
        found = True
        for lease_id in command.leases:
            lease = self._lease_table.get(lease_id)
            if lease is None or (command.lapsed and lease.alive(command.now)):
                found = False
                continue
            found = found and lease.alive(command.now)
            removals += self._drop_lease(lease_id)
        status = Outcome.OK if found or command.lapsed else Outcome.NOT_FOUND
        return Applied(status, tuple(removals))

    def _drop_lease(self, lease_id: str) -> tuple[Removal, ...]:
        """Drop a held lease and its instances (one change, if any went)."""
        _, keys = self._lease_table.pop(lease_id)
        removals = tuple(self._remove(key) for key in keys)
        if removals:
            self._changed(tuple(r.instance.service for r in removals))
        return removals

    def _checkpoint(self, command: Checkpoint) -> Applied:
        # Not a change: readers see later ends, and an answer cached with an
        # earlier one is recomputed when that end comes (it is a lower bound).
        # A lease (or instance) run out but not yet revoked takes it (the
        # leader held it alive, only its checkpoint came late): that is a
        # change, as it comes back into answers.
        now, instances = command.now, self._instances
        back: list[Service] = []
        for lease_id, end in command.leases:
            lease = self._lease_table.get(lease_id)
            if lease is not None and end > lease.expires:
                self._lease_table.put(evolve(lease, expires=end))
                for key in self._lease_table.members(lease_id):
                    instances[key] = Instance(instances[key].service, end)
                    if not lease.alive(now):
                        back.append(instances[key].service)
        for uuid, end in command.instances:
            key = uuid.lower()
            instance = instances.get(key)
            if instance is not None and not instance.service.lease and end > instance.expires:
                instances[key] = Instance(instance.service, end)
                if not instance.alive(now):
                    back.append(instance.service)
        if back:
            self._changed(tuple(back))
        return Applied(Outcome.OK)

    def lease(self, lease_id: str, now: float) -> Optional[Lease]:
        """The lease with this ID if it runs at ``now``, or None."""
        lease = self._lease_table.get(lease_id)
        return lease if lease is not None and lease.alive(now) else None

    def lease_count(self) -> int:
        """Leases held, run out or not (until revoked)."""
        return len(self._lease_table)

    def lease_held(self, lease_id: str) -> Optional[Lease]:
        """The lease with this ID, run out or not (until it is revoked)."""
        return self._lease_table.get(lease_id)

    def lease_members(self, lease_id: str) -> list[str]:
        """The UUIDs of the instances living by ``lease_id``."""
        return [self._instances[k].service.uuid for k in self._lease_table.members(lease_id)]

    def lapsed_leases(self, now: float) -> list[str]:
        """IDs of the leases run out at ``now`` (for the leader to revoke)."""
        return self._lease_table.lapsed(now)
