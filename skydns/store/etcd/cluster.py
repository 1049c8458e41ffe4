"""The registry in an existing etcd (SPEC.md §10): `EtcdCluster`, the
`ICluster` the API, DNS and callbacks use with ``--store etcd``, and the
service that keeps it following etcd.

A write is acknowledged once etcd acknowledged it and this node's copy shows
it; a consistent read waits until the copy reaches the revision of the last
write.  While etcd cannot be reached, writes fail (503, with the reason),
``/ready`` says why, and DNS answers from the copy for at most
``max_staleness`` seconds, then SERVFAIL, until etcd is back.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from skydns.cluster import ApplyListener, ICluster, StoreUnavailable
from skydns.commands import Command
from skydns.leases.renewal import INSTANCE, LEASE, NEEDS_LOG, NOT_FOUND, Renewal
from skydns.registry import Applied, Registry
from skydns.store.etcd.client import EtcdClient, EtcdError, EtcdUnavailable
from skydns.store.etcd.election import Election
from skydns.store.etcd.layout import Layout, lease_number
from skydns.store.etcd.mirror import EtcdMirror
from skydns.store.etcd.writes import EtcdWriter

log = Logger()

#: Seconds between checks that etcd answers and the watch keeps up.
PROBE_INTERVAL = 0.5
#: Seconds a write or read waits for the copy to reach etcd's revision.
CATCH_UP = 5.0
#: What a failed call to etcd raises (a write then answers 503).
_ETCD_FAILED = (EtcdUnavailable, EtcdError, TimeoutError, defer.TimeoutError, ConnectionError)


@implementer(ICluster)
class EtcdCluster:
    """`ICluster` over etcd, with the local copy in ``registry``."""

    def __init__(self, client: EtcdClient, layout: Layout, registry: Registry,
                 clock: IReactorTime, node_id: str, max_staleness: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.client = client
        self.layout = layout
        self.registry = registry
        self.clock = clock
        self.node_id = node_id
        self.max_staleness = max_staleness
        self.monotonic = monotonic
        self.mirror = EtcdMirror(client, layout, registry, clock)
        self.writer = EtcdWriter(client, layout, registry, node_id)
        self.election = Election(client, layout.leader, node_id, clock)
        self.mirror.live = self.election.holds
        #: When etcd last answered while the copy followed it (monotonic).
        self._healthy_at: Optional[float] = None
        self._behind = 0
        self._stale = True

    # -- ICluster ----------------------------------------------------------------

    def propose(self, command: Command) -> Deferred[Applied]:
        return Deferred.fromCoroutine(self._propose(command))

    async def _propose(self, command: Command) -> Applied:
        try:
            applied, revision = await self.writer.write(command)
        except _ETCD_FAILED as e:
            raise StoreUnavailable(f"etcd did not take the write: {e}") from e
        if revision:
            await self._caught_up(revision, wait_anyway=False)
        return applied

    async def _caught_up(self, revision: int, wait_anyway: bool) -> None:
        """Wait until the copy shows ``revision``; after `CATCH_UP`
        seconds, fail (``wait_anyway``: a read) or go on (a write etcd has
        already made durable: a later read waits for it)."""
        d = self.mirror.wait_for(revision)
        d.addTimeout(CATCH_UP, self.clock)
        try:
            await d
        except defer.TimeoutError:
            reason = f"this node's copy has not reached etcd revision {revision}"
            if wait_anyway:
                raise StoreUnavailable(reason) from None
            log.warn("write acknowledged, but {reason}", reason=reason)

    def renew(self, renewal: Renewal) -> Deferred[Optional[int]]:
        return Deferred.fromCoroutine(self._renew(renewal))

    async def _renew(self, renewal: Renewal) -> Optional[int]:
        """A renewal is a keep-alive of the etcd lease: no key changes."""
        kind, name = renewal.kind, renewal.key
        if renewal.kind == INSTANCE:
            held = self.registry.held(name)
            if held is None:
                return NOT_FOUND
            service = held.service
            if service.lease:
                kind, name = LEASE, service.lease
            elif service.no_expire or service.ttl != renewal.ttl:
                return NEEDS_LOG
            else:
                name = name.lower()
        number = lease_number(name) if kind != INSTANCE else self.mirror.ttls.number(name)
        if not number:
            return NOT_FOUND if kind != INSTANCE else NEEDS_LOG
        asked = self.clock.seconds()
        try:
            ttl = await self.client.keepalive(number)
        except _ETCD_FAILED as e:
            raise StoreUnavailable(f"etcd did not take the renewal: {e}") from e
        if ttl <= 0:
            return NOT_FOUND
        self.mirror.ttls.record(kind, name, asked + ttl)
        return ttl

    def read_barrier(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._read_barrier())

    async def _read_barrier(self) -> None:
        try:
            found, _ = await self.client.range(self.layout.written)
        except _ETCD_FAILED as e:
            raise StoreUnavailable(f"etcd cannot be read: {e}") from e
        await self._caught_up(found[0].mod_revision if found else 0, wait_anyway=True)

    def is_leader(self) -> bool:
        """Whether this node sends callbacks (it holds the election key)."""
        return self.election.holds()

    def is_ready(self) -> bool:
        return self.not_ready_because() is None

    def not_ready_because(self) -> Optional[str]:
        if self.mirror.problem is not None:
            return self.mirror.problem
        if self._healthy_at is None or self.monotonic() - self._healthy_at > 3 * PROBE_INTERVAL:
            return "etcd does not answer"
        return None

    def unavailable(self) -> Optional[str]:
        """Why DNS must answer SERVFAIL (the copy is older than the allowed
        staleness), or None."""
        if self._healthy_at is None:
            return "not read from etcd yet"
        if self.monotonic() - self._healthy_at > self.max_staleness:
            return f"etcd unreachable for over {self.max_staleness:g}s"
        return None

    def status(self) -> dict[str, Any]:
        reason = self.not_ready_because()
        return {
            "id": self.node_id,
            "store": "etcd",
            "endpoints": list(self.client.endpoints),
            "prefix": self.layout.prefix.decode("utf-8", "replace"),
            "revision": self.mirror.revision,
            # The node that sends callbacks; every node takes writes.
            "leader": self.election.holder,
            "role": "callbacks" if self.election.holds() else "member",
            "term": 0,
            "commit_index": self.mirror.revision,
            "applied_index": self.mirror.revision,
            "ready": reason is None,
            **({"not_ready_because": reason} if reason is not None else {}),
            "members": [],
        }

    def add_apply_listener(self, listener: ApplyListener) -> None:
        self.mirror.listeners.append(listener)

    # -- following etcd ----------------------------------------------------------

    def probe(self) -> Deferred[None]:
        """Ask etcd for the last write's revision: it answers (the copy is
        fresh as of now), and the watch has reached that write (else,
        after three probes, it is restarted)."""
        return Deferred.fromCoroutine(self._probe())

    async def _probe(self) -> None:
        try:
            d = Deferred.fromCoroutine(self.client.range(self.layout.written))
            d.addTimeout(2 * PROBE_INTERVAL, self.clock)
            found, _ = await d
        except Exception as e:
            log.debug("etcd probe failed: {e}", e=e)
        else:
            written = found[0].mod_revision if found else 0
            self._behind = self._behind + 1 if written > self.mirror.revision else 0
            if self._behind >= 3:
                self._behind = 0
                self.mirror.restart_watch(f"the watch is behind revision {written}")
            elif self.mirror.problem is None:
                self._healthy_at = self.monotonic()
        stale = self.unavailable() is not None
        if stale != self._stale:
            self._stale = stale
            # Cached DNS answers go: from now on they are SERVFAIL (or fresh).
            self.registry.invalidate()
            if stale:
                log.error("DNS answers SERVFAIL: {reason}", reason=self.unavailable())


class EtcdService(Service):
    """Keeps an `EtcdCluster` following etcd while the node runs."""

    def __init__(self, cluster: EtcdCluster) -> None:
        self.cluster = cluster
        self._probe = LoopingCall(cluster.probe)
        self._probe.clock = cluster.clock

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self.cluster.mirror.start()
        self.cluster.mirror.ttls.start()
        self.cluster.election.start()
        self._probe.start(PROBE_INTERVAL, now=False)

    def stopService(self) -> Deferred[None]:  # noqa: N802 - Twisted's name
        super().stopService()
        if self._probe.running:
            self._probe.stop()
        self.cluster.mirror.stop()
        d = Deferred.fromCoroutine(self.cluster.election.resign())
        d.addTimeout(2.0, self.cluster.clock)
        d.addErrback(lambda _: None)
        return d


def build_etcd_cluster(settings: Any, node_id: str, registry: Registry,
                       reactor: Any) -> tuple[EtcdCluster, Service]:  # fmt: skip
    """The cluster over the etcd ``settings`` (`skydns.store.etcd.settings`)
    and the service to start, for ``skydns.tap``."""
    from skydns.store.etcd.settings import etcd_http

    client = EtcdClient(list(settings.endpoints), reactor, http=etcd_http(settings, reactor))
    cluster = EtcdCluster(client, Layout(settings.prefix), registry, reactor, node_id,
                          max_staleness=settings.max_staleness)  # fmt: skip
    return cluster, EtcdService(cluster)
