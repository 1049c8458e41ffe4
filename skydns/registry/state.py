"""The registry: the deterministic state machine the Raft log drives.

It applies `skydns.commands` values given the time each one carries, keeps an
index by (environment, name) so a lookup that fixes both never scans every
instance, and serialises itself to bytes for snapshots (the encoding is in
`skydns.registry.snapshot`).  It never reads a clock: readers pass ``now``.

Semantics where SPEC.md is silent:

- UUIDs are compared case-insensitively: ``ABC`` and ``abc`` are one instance.
- A lease ends at ``expires``: an instance is live while ``now < expires``.
  Reads hide an instance as soon as its lease ends, before the leader's
  `Expire` removes it.
- Register over an expired-but-not-yet-removed UUID is allowed: the old
  instance is removed (its callbacks listed in the result) and replaced.
- Unregister of an expired-but-not-yet-removed UUID removes it (its callbacks
  fire) but answers ``not_found``, as GET already does.
- Renew sets the lease to ``now + ttl`` and the instance's TTL to ``ttl``.
- Drain keeps the lease as it is; draining a drained instance is OK and no
  change.  Leases (SPEC.md §7): `skydns.registry.leasing`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Optional

from attrs import define, evolve, field
from twisted.logger import Logger

from skydns.commands import (
    AddCallback,
    Checkpoint,
    Command,
    Drain,
    Expire,
    GrantLease,
    Register,
    Renew,
    RevokeLease,
    Unregister,
)
from skydns.names import WILDCARDS, Callback, Service
from skydns.patterns import Pattern
from skydns.registry.addresses import AddressIndex
from skydns.registry.addresses import Network as AddressNetwork
from skydns.registry.expiry import ExpiryQueue
from skydns.registry.leases import LeaseTable
from skydns.registry.leasing import LeaseCommands
from skydns.registry.mirroring import MirrorWrites
from skydns.registry.model import (
    MAX_INSTANCES_PER_NAME,
    Applied,
    Instance,
    Outcome,
    Removal,
    tally,
)
from skydns.registry.snapshot import FrozenState, decode_snapshot, encode_snapshot

log = Logger()


def _fixed(value: str) -> Optional[str]:
    """A callback match field as a label, or None when it matches anything."""
    lowered = value.lower()
    return None if not lowered or lowered in WILDCARDS else lowered


@define
class Registry(LeaseCommands, MirrorWrites):
    """All instances, indexed for lookups."""

    #: Bumped on every change; answer caches key on it.
    version: int = 0
    _instances: dict[str, Instance] = field(factory=dict, init=False)
    _index: dict[tuple[str, str], set[str]] = field(factory=dict, init=False)
    #: Each instance's labels (`Service.labels`), computed once.
    _labels: dict[str, tuple[str, ...]] = field(factory=dict, init=False)
    _by_address: AddressIndex = field(factory=AddressIndex, init=False)
    _callbacks: dict[str, dict[str, Callback]] = field(factory=dict, init=False)
    _leases: ExpiryQueue = field(factory=ExpiryQueue, init=False)
    _lease_table: LeaseTable = field(factory=LeaseTable, init=False)
    _listeners: list[Callable[[], None]] = field(factory=list, init=False)
    _change_listeners: list[Callable[[Optional[tuple[Service, ...]]], None]] = field(
        factory=list, init=False
    )
    #: Every UUID key in order, for wide queries; None when it must be rebuilt.
    _order: Optional[list[str]] = field(default=None, init=False)

    # -- writes ------------------------------------------------------------------

    def apply(self, command: Command) -> Applied:
        """Apply one command at the time it carries; never raises for a
        well-formed command."""
        return _APPLY[type(command)](self, command)  # type: ignore[arg-type]

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every change (cache invalidation)."""
        self._listeners.append(listener)

    def add_change_listener(
        self, listener: Callable[[Optional[tuple[Service, ...]]], None]
    ) -> None:
        """Call ``listener(touched)`` after every change: the services the
        change added, renewed or removed (both versions of one replaced), or
        None when any may have changed (a whole state installed).  A change
        that touches no instance (a callback added) still bumps `version`,
        and so the SOA serial: ``touched`` is then empty."""
        self._change_listeners.append(listener)

    def _changed(self, touched: Optional[tuple[Service, ...]] = None) -> None:
        self.version += 1
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.failure("registry listener {listener!r} failed", listener=listener)
        for change_listener in list(self._change_listeners):
            try:
                change_listener(touched)
            except Exception:
                log.failure("registry listener {listener!r} failed", listener=change_listener)

    def _register(self, service: Service, now: float) -> Applied:
        key = service.uuid.lower()
        removals: tuple[Removal, ...] = ()
        old = self._instances.get(key)
        if old is not None and old.alive(now):
            return Applied(Outcome.CONFLICT)
        if self.count_named(service, exclude=key) >= MAX_INSTANCES_PER_NAME:
            return Applied(Outcome.TOO_MANY)
        leased = self._leased(service, now)
        if leased is None:
            return Applied(Outcome.NO_LEASE)
        service, expires = leased
        touched: tuple[Service, ...] = (service,)
        if old is not None:
            removals = (self._remove(key),)
            touched = (old.service, service)
        self._insert(Instance(service, expires))
        self._changed(touched)
        return Applied(Outcome.OK, removals)

    def _unregister(self, uuid: str, now: float) -> Applied:
        key = uuid.lower()
        instance = self._instances.get(key)
        if instance is None:
            return Applied(Outcome.NOT_FOUND)
        removal = self._remove(key)
        self._changed((instance.service,))
        return Applied(Outcome.OK if instance.alive(now) else Outcome.NOT_FOUND, (removal,))

    def _renew(self, uuid: str, ttl: int, now: float) -> Applied:
        key = uuid.lower()
        instance = self._instances.get(key)
        if instance is None or not instance.alive(now) or instance.service.lease:
            return Applied(Outcome.NOT_FOUND)  # one of a lease renews with the lease
        renewed = Instance(evolve(instance.service, ttl=ttl), now + ttl)
        self._instances[key] = renewed
        if renewed.expires < instance.expires:
            self._leases.push(renewed, self._instances)
        # else the instance's entry in the lease heap is due no later than
        # its lease now ends; `expired` moves it on when it comes up.
        self._changed((instance.service, renewed.service))
        return Applied(Outcome.OK)

    def _drain(self, uuid: str, drain: bool, now: float) -> Applied:
        key = uuid.lower()
        instance = self._instances.get(key)
        if instance is None or not instance.alive(now):
            return Applied(Outcome.NOT_FOUND)
        if instance.service.drain is not drain:
            changed = Instance(evolve(instance.service, drain=drain), instance.expires)
            self._instances[key] = changed
            self._changed((instance.service, changed.service))
        return Applied(Outcome.OK)

    def _expire(self, uuids: Iterable[str], now: float) -> Applied:
        removals = []
        gone = []
        for uuid in uuids:
            key = uuid.lower()
            instance = self._instances.get(key)
            if instance is not None and not instance.alive(now):
                removals.append(self._remove(key))
                gone.append(instance.service)
        if removals:
            self._changed(tuple(gone))
        return Applied(Outcome.OK, tuple(removals))

    def _add_callback(self, callback: Callback, now: float) -> Applied:
        name, environment = _fixed(callback.name), _fixed(callback.environment)
        if name is not None and environment is not None:
            keys: Iterable[str] = sorted(self._index.get((environment, name), ()))
        else:
            keys = self._all_keys()
        attached = False
        for key in keys:
            instance = self._instances[key]
            if instance.alive(now) and callback.matches(instance.service):
                self._callbacks.setdefault(key, {})[callback.uuid.lower()] = callback
                attached = True
        if not attached:
            return Applied(Outcome.NOT_FOUND)
        self._changed(())
        return Applied(Outcome.OK)

    def _insert(self, instance: Instance, callbacks: Iterable[Callback] = ()) -> None:
        service = instance.service
        key = service.uuid.lower()
        if key not in self._instances:
            self._order = None
        self._instances[key] = instance
        labels = self._labels[key] = service.labels()
        self._index.setdefault((labels[5], labels[4]), set()).add(key)
        self._by_address.add(key, service.host)
        for callback in callbacks:
            self._callbacks.setdefault(key, {})[callback.uuid.lower()] = callback
        if service.lease:
            self._lease_table.attach(service.lease, key)
        self._leases.push(instance, self._instances)

    def _remove(self, key: str) -> Removal:
        instance = self._instances.pop(key)
        self._order = None
        labels = self._labels.pop(key)
        bucket = self._index[(labels[5], labels[4])]
        bucket.discard(key)
        if not bucket:
            del self._index[(labels[5], labels[4])]
        self._by_address.remove(key, instance.service.host)
        if instance.service.lease:
            self._lease_table.detach(instance.service.lease, key)
        callbacks = self._callbacks.pop(key, {})
        return Removal(instance, tuple(callbacks[k] for k in sorted(callbacks)))

    # -- reads -------------------------------------------------------------------

    def get(self, uuid: str, now: float) -> Optional[Instance]:
        """The live instance with this UUID (case-insensitive), or None."""
        instance = self._instances.get(uuid.lower())
        if instance is None or not instance.alive(now):
            return None
        return instance

    def held(self, uuid: str) -> Optional[Instance]:
        """The instance held under this UUID, its lease running or not
        (the change stream's readers tell a new version from an old one)."""
        return self._instances.get(uuid.lower())

    def callbacks(self, uuid: str) -> tuple[Callback, ...]:
        """The callbacks attached to the instance with this UUID."""
        attached = self._callbacks.get(uuid.lower(), {})
        return tuple(attached[k] for k in sorted(attached))

    def _candidates(self, pattern: Pattern) -> list[str]:
        """UUID keys that may match ``pattern``, from the narrowest index."""
        if pattern.uuid is not None:
            return [pattern.uuid] if pattern.uuid in self._instances else []
        if pattern.name is not None and pattern.environment is not None:
            return sorted(self._index.get((pattern.environment, pattern.name), ()))
        return self._all_keys()

    def _all_keys(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._instances)
        return self._order

    def _matching(self, pattern: Pattern, now: float, drained: bool) -> Iterable[Instance]:
        fixed = [(i, want) for i, want in enumerate(pattern.labels()) if want is not None]
        protocol = pattern.protocol
        for key in self._candidates(pattern):
            labels = self._labels[key]
            if all(labels[i] == want for i, want in fixed):
                instance = self._instances[key]
                service = instance.service
                if (
                    instance.alive(now)
                    and (drained or not service.drain)
                    and (protocol is None or protocol == service.protocol)
                ):
                    yield instance

    def query(self, pattern: Pattern, now: float, drained: bool = True) -> list[Instance]:
        """Live instances matching ``pattern``, in a stable order (by UUID);
        drained ones only with ``drained`` (the API shows them, DNS not)."""
        return list(self._matching(pattern, now, drained))

    def failover(self, pattern: Pattern, now: float) -> list[Instance]:
        """Live instances, not drained, matching ``pattern`` in every
        position but region, and not in ``pattern.region`` (SRV region
        failover, priority 20).

        Empty when the pattern does not name a region.
        """
        if pattern.region is None:
            return []
        return [
            instance
            for instance in self._matching(pattern.without_region(), now, False)
            if self._labels[instance.service.uuid.lower()][3] != pattern.region
        ]

    def regions(self, now: float) -> dict[str, int]:
        """Live instances per Region, keyed by the value as registered (as
        SkyDNS 1 did)."""
        return tally(self._instances.values(), now, "region")

    def environments(self, now: float) -> dict[str, int]:
        """Live instances per Environment, keyed by the value as registered."""
        return tally(self._instances.values(), now, "environment")

    def expired(self, now: float) -> list[str]:
        """UUIDs whose lease ran out at ``now`` (for the leader's Expire).

        Earliest expiry first.  Only the expired part of the lease heap is
        visited, so this is cheap when little has expired.
        """
        return self._leases.due(now, self._instances)

    def by_address(self, address: str, now: float) -> list[Instance]:
        """Live instances, not drained, whose Host is this IP literal
        (reverse lookups)."""
        instances = (self._instances[k] for k in self._by_address.keys(address))
        return [i for i in instances if i.alive(now) and not i.service.drain]

    def holds_address_in(self, network: AddressNetwork) -> bool:
        """Whether an instance is held (live or not) whose Host is an
        address in ``network``: a reverse zone's name above it exists."""
        return self._by_address.any_in(network)

    def count_named(self, service: Service, exclude: str = "") -> int:
        """Instances held under ``service``'s (environment, name), expired
        ones not yet removed included, leaving out the UUID key ``exclude``."""
        # The index key is (labels[5], labels[4]) of `Service.labels`.
        bucket = self._index.get((service.environment.lower(), service.name.lower()), ())
        return len(bucket) - (exclude in bucket)

    def __len__(self) -> int:
        """Instances held, including expired ones the leader has not yet removed."""
        return len(self._instances)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as deterministic JSON bytes (format `SNAPSHOT_FORMAT`)."""
        return encode_snapshot(*self.frozen_state())

    def frozen_state(self) -> FrozenState:
        """A copy of the state that later changes do not touch (instances,
        callbacks and leases are immutable): `snapshot_pieces` may encode it
        while the registry changes."""
        callbacks = {
            key: tuple(found[k] for k in sorted(found)) for key, found in self._callbacks.items()
        }
        return self.version, dict(self._instances), callbacks, tuple(self._lease_table)

    def replace_with(self, other: Registry) -> None:
        """Take ``other``'s whole state in place (a snapshot installed from the
        leader); listeners stay, and see one change."""
        self._instances = other._instances
        self._index = other._index
        self._labels = other._labels
        self._by_address = other._by_address
        self._callbacks = other._callbacks
        self._leases = other._leases
        self._lease_table = other._lease_table
        self._order = None
        self.version = max(self.version, other.version)
        self._changed()

    @classmethod
    def restore(cls, data: bytes) -> Registry:
        """A registry from `snapshot` bytes; `SnapshotError` if unreadable."""
        registry = cls()
        registry.version = decode_snapshot(data, registry._insert, registry._lease_table.put)
        return registry

    def __eq__(self, other: object) -> bool:
        """Registries are equal when they hold the same state."""
        if not isinstance(other, Registry):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]


#: How each kind of command is applied.
_APPLY: dict[type, Callable[[Registry, Any], Applied]] = {
    Register: lambda r, c: r._register(c.service, c.now),
    Unregister: lambda r, c: r._unregister(c.uuid, c.now),
    Renew: lambda r, c: r._renew(c.uuid, c.ttl, c.now),
    Drain: lambda r, c: r._drain(c.uuid, c.drain, c.now),
    Expire: lambda r, c: r._expire(c.uuids, c.now),
    AddCallback: lambda r, c: r._add_callback(c.callback, c.now),
    GrantLease: Registry._grant,
    RevokeLease: Registry._revoke,
    Checkpoint: Registry._checkpoint,
}
