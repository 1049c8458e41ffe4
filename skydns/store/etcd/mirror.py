"""A node's copy of the registry kept in etcd (``--store etcd``): one range
read of the prefix, then a watch from the revision after it, each event
replayed into the local `Registry` as the command it amounts to, so that
DNS, watches and the API read the same registry as with Raft.

The watch is resumed from the last revision seen after any disconnect; a
compacted revision means a fresh read.  The apply listeners (audit log,
metrics, callbacks) see the replayed commands; ``live`` (callbacks are sent)
is true on the node that holds the election key.
"""

from __future__ import annotations

from typing import Callable, Optional

from attrs import evolve
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from skydns.cluster import ApplyListener
from skydns.commands import (
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
from skydns.registry import Applied, Outcome, Registry
from skydns.store.etcd.client import Compacted, EtcdClient, Event, KeyValue, prefix_end
from skydns.store.etcd.layout import BadValue, Layout, decode_lease, decode_service
from skydns.store.etcd.ttls import TTLTracker

log = Logger()

#: A delete this close to the copy's own end for the instance (or lease) is
#: taken as its expiry, not a client's unregister (the audit log says which).
EXPIRY_SLACK = 1.0


class EtcdMirror:
    """The local copy: ``registry`` as etcd holds it under ``layout``, as of
    `revision`."""

    def __init__(self, client: EtcdClient, layout: Layout, registry: Registry,
                 clock: IReactorTime) -> None:  # fmt: skip
        self.client = client
        self.layout = layout
        self.registry = registry
        self.clock = clock
        #: The etcd revision the copy reflects (0: not read yet).
        self.revision = 0
        self.listeners: list[ApplyListener] = []
        #: Whether replayed removals send callbacks here (the election's holder).
        self.live: Callable[[], bool] = lambda: False
        #: Each etcd lease's remaining time, polled so DNS TTLs stay true.
        self.ttls = TTLTracker(client, registry, clock)
        #: Why the copy is not following etcd now (None while it is).
        self.problem: Optional[str] = "not read from etcd yet"
        self._waiters: list[tuple[int, Deferred[None]]] = []
        self._reload = True
        self._running = False
        self._watch: Optional[Deferred[None]] = None

    # -- following etcd ------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        Deferred.fromCoroutine(self._run())

    def stop(self) -> None:
        self._running = False
        if self._watch is not None:
            self._watch.cancel()
        self.ttls.stop()

    def restart_watch(self, reason: str) -> None:
        """Drop the watch (it fell silent) and resume it from `revision`."""
        if self._watch is not None:
            log.warn("etcd watch restarted: {reason}", reason=reason)
            self._watch.cancel()

    async def _run(self) -> None:
        delay = 0.1
        while self._running:
            try:
                if self._reload:
                    await self.load()
                    self._reload = False
                self._watch = self.client.watch(self.layout.prefix, prefix_end(self.layout.prefix),
                                                self.revision + 1, self.apply_events,
                                                self._opened)  # fmt: skip
                await self._watch
                problem = "etcd ended the watch"
            except Compacted as e:
                log.warn("etcd compacted past revision {revision}: reading afresh",
                         revision=self.revision)  # fmt: skip
                self._reload = True
                problem = f"reading afresh ({e})"
            except defer.CancelledError:
                problem = "watch restarted"
            except Exception as e:
                problem = f"etcd unreachable: {e}"
            finally:
                self._watch = None
            if not self._running:
                return
            if self.problem is None:  # it was following etcd: back off afresh
                log.warn("etcd watch lost ({problem}); resuming from revision {revision}",
                         problem=problem, revision=self.revision + 1)  # fmt: skip
                delay = 0.1
            self.problem = problem
            await _sleep(self.clock, 0.0 if self._reload else delay)
            delay = min(delay * 2, 2.0)

    def _opened(self) -> None:
        if self.problem is not None and self.revision:
            log.info("etcd watch resumed from revision {revision}", revision=self.revision + 1)
        self.problem = None

    async def load(self) -> None:
        """Replace the copy with one range read of the prefix."""
        kvs, revision = await self.client.range(self.layout.prefix, prefix_end(self.layout.prefix))
        fresh = Registry()
        leases: list[tuple[str, KeyValue]] = []
        services: list[tuple[str, KeyValue]] = []
        for kv in kvs:
            parsed = self.layout.parse(kv.key)
            if parsed is not None:
                (leases if parsed[0] == "lease" else services).append((parsed[1], kv))
        numbers = {kv.lease for _, kv in leases + services if kv.lease}
        ends = await self.ttls.poll(numbers)
        self.ttls.forget()
        now = self.clock.seconds()
        for lease_id, kv in leases:
            try:
                ttl = decode_lease(kv.value)
            except BadValue as e:
                log.warn("etcd key {key!r} skipped: {e}", key=kv.key, e=e)
                continue
            end = ends.get(kv.lease)
            if end is not None:  # (gone since the read: its delete is on the way)
                fresh.apply(GrantLease(lease_id, ttl, min(end, now + ttl) - ttl))
                self.ttls.track(kv.lease, "lease", lease_id, ttl)
        for uuid, kv in services:
            try:
                service, callbacks = self._service(uuid, kv)
            except BadValue as e:
                log.warn("etcd key {key!r} skipped: {e}", key=kv.key, e=e)
                continue
            at = now
            if _own_ttl(service) and kv.lease:
                end = ends.get(kv.lease)
                if end is None:
                    continue
                at = min(end, now + service.ttl) - service.ttl
                self.ttls.track(kv.lease, "instance", uuid, service.ttl)
            if fresh.apply(Register(service, at)).status is Outcome.OK:
                fresh.attach_callbacks(uuid, callbacks)
        self.registry.replace_with(fresh)
        self.revision = revision
        log.info("read {count} instances and {leases} leases from etcd at revision {revision}",
                 count=len(services), leases=len(leases), revision=revision)  # fmt: skip
        self._release()

    # -- replaying events ----------------------------------------------------------

    def apply_events(self, events: list[Event], revision: int) -> None:
        """Replay one batch of watched changes (all of them up to ``revision``)."""
        now = self.clock.seconds()
        for event in events:
            parsed = self.layout.parse(event.kv.key)
            if parsed is None:
                continue
            kind, name = parsed
            try:
                if kind == "lease":
                    self._lease_event(event, name, now)
                else:
                    self._service_event(event, name, now)
            except BadValue as e:
                log.warn("etcd key {key!r} skipped: {e}", key=event.kv.key, e=e)
        self.revision = max(self.revision, revision)
        self._release()

    def _emit(self, command: Command) -> Applied:
        applied = self.registry.apply(command)
        live = self.live()
        for listener in list(self.listeners):
            listener(command, applied, live)
        return applied

    def _lease_event(self, event: Event, lease_id: str, now: float) -> None:
        held = self.registry.lease_held(lease_id)
        if event.kind == "put":
            ttl = decode_lease(event.kv.value)
            self.ttls.track(event.kv.lease, "lease", lease_id, ttl)
            if held is None or not held.alive(now):
                self._emit(GrantLease(lease_id, ttl, now))
            return
        self.ttls.untrack(lease_id)
        if held is not None:
            lapsed = not held.alive(now + EXPIRY_SLACK)
            self._emit(RevokeLease((lease_id,), max(now, held.expires) if lapsed else now, lapsed))

    def _service_event(self, event: Event, uuid: str, now: float) -> None:
        held = self.registry.held(uuid)
        if event.kind == "delete":
            self.ttls.untrack(uuid)
            if held is None:
                return
            service = held.service
            if not service.no_expire and not held.alive(now + EXPIRY_SLACK):
                self._emit(Expire((service.uuid,), max(now, held.expires)))
            else:
                self._emit(Unregister(service.uuid, now))
            return
        service, callbacks = self._service(uuid, event.kv)
        if _own_ttl(service) and event.kv.lease:
            self.ttls.track(event.kv.lease, "instance", uuid, service.ttl)
        else:
            self.ttls.untrack(uuid)
        if held is not None and held.alive(now) and _same(held.service, service):
            if held.service.drain is not service.drain:
                self._emit(Drain(service.uuid, service.drain, now))
            if not service.lease and held.service.ttl != service.ttl:
                self._emit(Renew(service.uuid, service.ttl, now))
        else:
            if held is not None and held.alive(now):
                self._emit(Unregister(service.uuid, now))  # replaced by another write
            if self._emit(Register(service, now)).status is Outcome.NO_LEASE:
                # Its lease ran out here, yet etcd holds it: this copy's end
                # for it was too early.  Read everything afresh.
                self._reload = True
                self.restart_watch(f"instance {uuid} came under a lease this copy had let lapse")
                return
        self.registry.attach_callbacks(uuid, callbacks)

    def _service(self, uuid: str, kv: KeyValue) -> tuple[Service, tuple[Callback, ...]]:
        service, callbacks = decode_service(kv.value)
        if service.uuid.lower() != uuid:
            raise BadValue(f"the instance's UUID {service.uuid!r} is not its key's")
        return service, callbacks

    # -- waiting for a revision ----------------------------------------------------

    def wait_for(self, revision: int) -> Deferred[None]:
        """Fire once the copy reflects ``revision``."""
        if revision <= self.revision:
            return defer.succeed(None)
        d: Deferred[None] = Deferred(lambda d: self._waiters.remove((revision, d)))
        self._waiters.append((revision, d))
        return d

    def _release(self) -> None:
        due = [w for w in self._waiters if w[0] <= self.revision]
        if due:
            self._waiters = [w for w in self._waiters if w[0] > self.revision]
            for _, d in due:
                d.callback(None)


def _own_ttl(service: Service) -> bool:
    return not service.lease and not service.no_expire


def _same(old: Service, new: Service) -> bool:
    """Whether ``new`` is ``old`` with at most its drain and TTL changed."""
    return evolve(old, drain=False, ttl=0) == evolve(new, drain=False, ttl=0)


def _sleep(clock: IReactorTime, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    clock.callLater(seconds, d.callback, None)
    return d
