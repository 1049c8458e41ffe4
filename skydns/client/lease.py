"""`LeaseKeeper`: keep one instance registered for as long as a service runs.

It registers the instance when started, renews its lease every ``interval``
seconds (``PATCH {"TTL": ttl}``), registers it again when a renewal finds it
gone (404: it expired during a partition, or the registry lost it), retries
with exponential backoff while the server cannot be reached or cannot serve
(503), and unregisters the instance when stopped.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.client.errors import Conflict, ConnectionFailed, NotFound, SkyDNSError, Unavailable
from skydns.client.http import Clock, SkyDNSClient
from skydns.client.models import ServiceSpec


class LeaseKeeper(Service):
    """An `IService` that keeps ``uuid`` registered as ``service`` while running.

    ``interval`` defaults to a third of the TTL, so two renewals can be lost
    before the lease runs out.  After ``n`` failures in a row the next try
    waits ``min(backoff_max, backoff_initial * 2 ** (n - 1))`` seconds.
    """

    log = Logger()

    def __init__(
        self,
        client: SkyDNSClient,
        uuid: str,
        service: ServiceSpec,
        interval: Optional[float] = None,
        clock: Optional[Clock] = None,
        unregister_on_stop: bool = True,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.client = client
        self.uuid = uuid
        self.service = service
        self.interval = interval if interval is not None else max(service.ttl / 3.0, 0.5)
        self.clock: Clock = clock  # type: ignore[assignment]
        self.unregister_on_stop = unregister_on_stop
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        #: Whether the last register or renew succeeded.
        self.registered = False
        #: Failed attempts since the last success.
        self.failures = 0
        self._call: Any = None  # the pending IDelayedCall
        self._inflight: Optional[Deferred[Any]] = None
        self._bounces = 0

    # -- IService --------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._attempt(self._register)

    def stopService(self) -> "Deferred[None]":
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._inflight is not None and not self._inflight.called:
            self._inflight.cancel()
        self._inflight = None
        if not self.unregister_on_stop:
            return succeed(None)
        # Unregister even if no register was acknowledged: one may have
        # reached the server before it was cancelled.
        d: Deferred[Any] = self.client.unregister(self.uuid)
        d.addCallback(self._unregistered)
        d.addErrback(self._unregister_failed)
        return d

    # -- the schedule ----------------------------------------------------------

    def _register(self) -> "Deferred[Any]":
        return self.client.register(self.uuid, self.service)

    def _renew(self) -> "Deferred[Any]":
        return self.client.renew(self.uuid, self.service.ttl)

    def _schedule(self, delay: float, action: Callable[[], "Deferred[Any]"]) -> None:
        self._call = self.clock.callLater(delay, self._attempt, action)

    def _attempt(self, action: Callable[[], "Deferred[Any]"]) -> None:
        self._call = None
        d = action()
        self._inflight = d
        d.addCallbacks(self._succeeded, self._failed, errbackArgs=(action,))
        d.addErrback(lambda f: self.log.failure("lease keeper for {uuid}", f, uuid=self.uuid))

    def _succeeded(self, _: object) -> None:
        self._inflight = None
        if not self.running:
            return
        if not self.registered:
            self.log.info("registered {uuid}", uuid=self.uuid)
        self.registered = True
        self.failures = 0
        self._bounces = 0
        self._schedule(self.interval, self._renew)

    def _failed(self, failure: Failure, action: Callable[[], "Deferred[Any]"]) -> None:
        self._inflight = None
        if not self.running or failure.check(CancelledError):
            return
        # A 404 after a 409 (or the reverse) more than once in a row means the
        # server contradicts itself: back off rather than bounce forever.
        bouncing = self._bounces >= 2
        if action == self._renew and failure.check(NotFound) and not bouncing:
            self._bounces += 1
            self.log.warn("{uuid} was gone from the registry; registering it again",
                          uuid=self.uuid)
            self.registered = False
            self._attempt(self._register)
            return
        if action == self._register and failure.check(Conflict) and not bouncing:
            self._bounces += 1
            # Already there under our UUID (e.g. we restarted): take over its lease.
            self._attempt(self._renew)
            return
        self._bounces = 0
        self.failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (self.failures - 1))
        if failure.check(ConnectionFailed, Unavailable):
            self.log.warn("lease for {uuid}: {error}; retrying in {delay}s",
                          uuid=self.uuid, error=failure.getErrorMessage(), delay=delay)
        elif failure.check(SkyDNSError):
            self.log.error("lease for {uuid} refused: {error}; retrying in {delay}s",
                           uuid=self.uuid, error=failure.getErrorMessage(), delay=delay)
        else:
            self.log.failure("lease for {uuid}; retrying in {delay}s", failure,
                             uuid=self.uuid, delay=delay)
        self._schedule(delay, action)

    def _unregistered(self, _: object) -> None:
        self.registered = False
        self.log.info("unregistered {uuid}", uuid=self.uuid)

    def _unregister_failed(self, failure: Failure) -> None:
        self.registered = False
        if failure.check(NotFound):
            return
        self.log.warn("could not unregister {uuid}: {error}",
                      uuid=self.uuid, error=failure.getErrorMessage())
