"""`Session`: one lease that keeps every instance a process registers.

A process that runs fifty instances sends one heartbeat, not fifty: the
session grants a lease when started, registers each instance added to it
under that lease, and renews only the lease, every ``interval`` seconds.
When a renewal finds the lease gone (404: it lapsed during a partition, or
was revoked) the session grants a new one and registers every instance
again.  It retries with exponential backoff while the server cannot be
reached or cannot serve, and revokes the lease when stopped, which removes
its instances at once (SPEC.md §7).
"""

from __future__ import annotations

from typing import Any, Optional

from attrs import evolve
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.client.errors import Conflict, ConnectionFailed, NotFound, Unavailable
from skydns.client.http import Clock, SkyDNSClient
from skydns.client.models import ServiceSpec


class Session(Service):
    """An `IService` holding one lease of ``ttl`` seconds and the instances
    added to it.  ``interval`` defaults to a third of the TTL."""

    log = Logger()

    def __init__(
        self,
        client: SkyDNSClient,
        ttl: int = 30,
        interval: Optional[float] = None,
        clock: Optional[Clock] = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.client = client
        self.ttl = ttl
        self.interval = interval if interval is not None else max(ttl / 3.0, 0.5)
        self.clock: Clock = clock  # type: ignore[assignment]
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        #: The lease held now, if any.
        self.lease_id: Optional[str] = None
        #: Every instance added, by UUID, as registered (with the lease).
        self.instances: dict[str, ServiceSpec] = {}
        #: Failed attempts since the last success.
        self.failures = 0
        #: Leases granted so far (a second one means the first was lost).
        self.grants = 0
        self._call: Any = None
        self._inflight: Optional[Deferred[Any]] = None

    # -- what a program calls ----------------------------------------------------

    def add(self, uuid: str, service: ServiceSpec) -> Deferred[Any]:
        """Keep ``uuid`` registered as ``service`` under this session's
        lease; fires once registered (at once if no lease is held yet: it
        is registered when one is)."""
        self.instances[uuid] = service
        if self.lease_id is None:
            return succeed(None)
        return Deferred.fromCoroutine(self._register(uuid, self.lease_id))

    def remove(self, uuid: str) -> Deferred[Any]:
        """Stop keeping ``uuid`` and unregister it."""
        if self.instances.pop(uuid, None) is None:
            return succeed(None)
        d: Deferred[Any] = self.client.unregister(uuid)
        return d.addErrback(lambda f: f.trap(NotFound))

    # -- IService ----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._attempt()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._inflight is not None and not self._inflight.called:
            self._inflight.cancel()
        lease_id, self.lease_id = self.lease_id, None
        if lease_id is None:
            return succeed(None)
        d: Deferred[Any] = self.client.revoke_lease(lease_id)

        def failed(failure: Failure) -> None:
            if not failure.check(NotFound):
                self.log.warn("could not revoke lease {lease}: {error}", lease=lease_id,
                              error=failure.getErrorMessage())  # fmt: skip

        return d.addCallbacks(lambda _: None, failed)

    # -- the schedule ------------------------------------------------------------

    async def _step(self) -> None:
        """Renew the lease held, or grant one and register every instance."""
        if self.lease_id is not None:
            try:
                await self.client.renew_lease(self.lease_id)
                return
            except NotFound:
                self.log.warn("lease {lease} was gone; granting a new one and registering "
                              "{count} instances again", lease=self.lease_id,
                              count=len(self.instances))  # fmt: skip
                self.lease_id = None
        granted = await self.client.grant_lease(self.ttl)
        self.grants += 1
        self.lease_id = granted.id
        for uuid in list(self.instances):
            await self._register(uuid, granted.id)

    async def _register(self, uuid: str, lease_id: str) -> None:
        service = self.instances.get(uuid)
        if service is None:
            return
        spec = evolve(service, lease=lease_id)
        try:
            await self.client.register(uuid, spec)
        except Conflict:
            # Registered already (by this process before a restart, or under
            # a lease that has not lapsed yet): take it over.
            await self.client.unregister(uuid)
            await self.client.register(uuid, spec)

    def _attempt(self) -> None:
        self._call = None
        d = self._inflight = Deferred.fromCoroutine(self._step())
        d.addCallbacks(self._succeeded, self._failed)
        d.addErrback(lambda f: self.log.failure("lease session", f))

    def _succeeded(self, _: object) -> None:
        self._inflight = None
        self.failures = 0
        if self.running:
            self._call = self.clock.callLater(self.interval, self._attempt)

    def _failed(self, failure: Failure) -> None:
        self._inflight = None
        if not self.running or failure.check(CancelledError):
            return
        self.failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self.failures - 1))
        if failure.check(ConnectionFailed, Unavailable):
            self.log.warn("lease session: {error}; retrying in {delay}s",
                          error=failure.getErrorMessage(), delay=delay)  # fmt: skip
        else:
            self.log.failure("lease session; retrying in {delay}s", failure, delay=delay)
        self._call = self.clock.callLater(delay, self._attempt)
