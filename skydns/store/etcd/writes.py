"""Each registry command as etcd writes (``--store etcd``).

A register is a transaction that creates the key only if it is absent (else
409); an update reads the key and writes it back only if it is unchanged
since (compare on its revision, retried a few times); a lease is an etcd
lease with the same ID, and revoking it deletes every instance under it.
Every write also rewrites the ``written`` key in the same transaction (or
right after, for a revoke), so a read barrier learns the last write's
revision with one read.  Expiry needs no write: etcd deletes the keys of a
lease that ran out.
"""

from __future__ import annotations

from typing import Callable, Optional

from attrs import evolve
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
from skydns.names import Callback, Service
from skydns.patterns import Pattern
from skydns.registry import Applied, Outcome, Registry
from skydns.registry.model import MAX_INSTANCES_PER_NAME
from skydns.store.etcd.client import (
    EtcdClient,
    EtcdError,
    KeyValue,
    compare_created,
    compare_modified,
    delete_op,
    put_op,
)
from skydns.store.etcd.layout import (
    BadValue,
    Layout,
    decode_service,
    encode_lease,
    encode_service,
    lease_number,
)

log = Logger()

#: Attempts at a read-modify-write that others keep overtaking.
ATTEMPTS = 5

#: How an update changes an instance and its callbacks.
Change = Callable[[Service, tuple[Callback, ...]], tuple[Service, tuple[Callback, ...]]]

_OK = Applied(Outcome.OK)
_NOT_FOUND = Applied(Outcome.NOT_FOUND)


class EtcdWriter:
    """Commands to etcd under ``layout``; ``registry`` (the local copy) is
    consulted only to find the instances a callback matches and to count
    instances per name."""

    def __init__(self, client: EtcdClient, layout: Layout, registry: Registry,
                 node_id: str) -> None:  # fmt: skip
        self.client = client
        self.layout = layout
        self.registry = registry
        self.marker = put_op(layout.written, node_id.encode("utf-8"))

    async def write(self, command: Command) -> tuple[Applied, int]:
        """Apply ``command`` in etcd: its result, and the revision to wait
        for before the local copy shows it (0: nothing was written)."""
        if isinstance(command, Register):
            return await self._register(command.service)
        if isinstance(command, Unregister):
            return await self._unregister(command.uuid)
        if isinstance(command, Renew):
            return await self._renew(command.uuid, command.ttl)
        if isinstance(command, Drain):
            drain = command.drain
            return await self._update(command.uuid, lambda s, c: (evolve(s, drain=drain), c))
        if isinstance(command, AddCallback):
            return await self._add_callback(command.callback, command.now)
        if isinstance(command, GrantLease):
            return await self._grant(command.lease, command.ttl)
        if isinstance(command, RevokeLease):
            return await self._revoke(command.leases)
        if isinstance(command, (Expire, Checkpoint)):
            return _OK, 0  # etcd expires leases itself; renewals are keep-alives
        raise TypeError(f"not a command: {command!r}")

    async def _register(self, service: Service) -> tuple[Applied, int]:
        key = self.layout.service_key(service.uuid)
        named = self.registry.count_named(service, exclude=service.uuid.lower())
        if named >= MAX_INSTANCES_PER_NAME:
            return Applied(Outcome.TOO_MANY), 0
        compare = [compare_created(key, 0)]
        own = 0
        if service.no_expire:
            lease = 0
        elif service.lease:
            lease = lease_number(service.lease)
            if not lease:
                return Applied(Outcome.NO_LEASE), 0
            compare.append(compare_created(self.layout.lease_key(service.lease), 0, "GREATER"))
        else:
            lease = own = await self.client.grant(service.ttl)
        done, revision, _ = await self.client.txn(
            compare, [put_op(key, encode_service(service), lease), self.marker])
        if done:
            return _OK, revision
        if own:
            await self.client.revoke(own)
        found, _ = await self.client.range(key)
        return Applied(Outcome.CONFLICT if found else Outcome.NO_LEASE), 0

    async def _read(self, uuid: str) -> Optional[tuple[KeyValue, Service, tuple[Callback, ...]]]:
        found, _ = await self.client.range(self.layout.service_key(uuid))
        if not found:
            return None
        try:
            service, callbacks = decode_service(found[0].value)
        except BadValue as e:  # not SkyDNS's: no node shows it either
            log.warn("etcd key {key!r} left alone: {e}", key=found[0].key, e=e)
            return None
        return found[0], service, callbacks

    async def _unregister(self, uuid: str) -> tuple[Applied, int]:
        for _ in range(ATTEMPTS):
            held = await self._read(uuid)
            if held is None:
                return _NOT_FOUND, 0
            kv, service, _ = held
            done, revision, _ = await self.client.txn(
                [compare_modified(kv.key, kv.mod_revision)], [delete_op(kv.key), self.marker])
            if done:
                if kv.lease and not service.lease:
                    await self.client.revoke(kv.lease)  # its own lease: nothing else on it
                return _OK, revision
        raise EtcdError(409, f"instance {uuid} kept changing; try again")

    async def _update(self, uuid: str, change: Change, lease: int = -1) -> tuple[Applied, int]:
        """Rewrite an instance's key as ``change`` says, keeping its etcd
        lease (or moving it to ``lease``)."""
        for _ in range(ATTEMPTS):
            held = await self._read(uuid)
            if held is None:
                return _NOT_FOUND, 0
            kv, service, callbacks = held
            service, callbacks = change(service, callbacks)
            done, revision, _ = await self.client.txn(
                [compare_modified(kv.key, kv.mod_revision)],
                [put_op(kv.key, encode_service(service, callbacks),
                        kv.lease if lease < 0 else lease), self.marker])  # fmt: skip
            if done:
                return _OK, revision
        raise EtcdError(409, f"instance {uuid} kept changing; try again")

    async def _renew(self, uuid: str, ttl: int) -> tuple[Applied, int]:
        """A new TTL for an instance not under a lease: a new etcd lease of
        that TTL (a NoExpire instance only takes the TTL, as with Raft)."""
        held = await self._read(uuid)
        if held is None or held[1].lease:
            return _NOT_FOUND, 0
        if held[1].no_expire:
            return await self._update(uuid, lambda s, c: (evolve(s, ttl=ttl), c))
        old = held[0].lease
        lease = await self.client.grant(ttl)
        applied, revision = await self._update(uuid, lambda s, c: (evolve(s, ttl=ttl), c), lease)
        gone = lease if applied.status is not Outcome.OK else old
        if gone:
            await self.client.revoke(gone)
        return applied, revision

    async def _add_callback(self, callback: Callback, now: float) -> tuple[Applied, int]:
        def attach(service: Service, callbacks: tuple[Callback, ...]
                   ) -> tuple[Service, tuple[Callback, ...]]:  # fmt: skip
            others = tuple(c for c in callbacks if c.uuid.lower() != callback.uuid.lower())
            return service, (*others, callback)

        revision = 0
        attached = False
        for instance in list(self.registry.query(Pattern(), now)):
            if callback.matches(instance.service):
                applied, at = await self._update(instance.service.uuid, attach)
                attached = attached or applied.status is Outcome.OK
                revision = max(revision, at)
        return (_OK if attached else _NOT_FOUND), revision

    async def _grant(self, lease_id: str, ttl: int) -> tuple[Applied, int]:
        number = lease_number(lease_id)
        if not number:
            return Applied(Outcome.INVALID), 0
        try:
            await self.client.grant(ttl, number)
        except EtcdError as e:
            if "exists" in e.message:
                return Applied(Outcome.CONFLICT), 0
            raise
        done, revision, _ = await self.client.txn(
            [], [put_op(self.layout.lease_key(lease_id), encode_lease(ttl), number), self.marker])
        return _OK, revision

    async def _revoke(self, leases: tuple[str, ...]) -> tuple[Applied, int]:
        found = True
        for lease_id in leases:
            number = lease_number(lease_id)
            found = bool(number) and await self.client.revoke(number) and found
        _, revision, _ = await self.client.txn([], [self.marker])
        return (_OK if found else _NOT_FOUND), revision
