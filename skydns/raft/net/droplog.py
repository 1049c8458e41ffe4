"""How a Raft port reports the connections it drops: one log line per reason
every `LOG_INTERVAL` seconds at most, with a count of those left out, and a
count of every drop by reason (what tests and operators look at); and the
one way both authenticated transports (cluster key, TLS) wait for a
connection's handshake before handing the connection on."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from skydns.throttle import LogThrottle, address_text

log = Logger()

#: At most one log line per reason in this many seconds.
LOG_INTERVAL = 10.0


class RateLimitedLog:
    """Warnings about dropped connections, one line per reason per interval."""

    def __init__(self, clock: IReactorTime, interval: float = LOG_INTERVAL) -> None:
        self._throttle = LogThrottle(clock, interval)
        #: Connections dropped, by reason (for tests and curious operators).
        self.dropped: dict[str, int] = {}

    @property
    def clock(self) -> IReactorTime:
        return self._throttle.clock  # type: ignore[return-value]

    @property
    def interval(self) -> float:
        return self._throttle.interval

    def dropped_connection(self, reason: str, peer: object) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        left_out = self._throttle.allow(reason)
        if left_out is None:
            return
        log.warn(
            "dropped an unauthenticated Raft connection from {peer}: {reason}"
            " ({left_out} more like it not logged)",
            peer=address_text(peer), reason=reason, left_out=left_out,
        )  # fmt: skip


def connect_when_ready(
    endpoint: IStreamClientEndpoint,
    factory: IProtocolFactory,
    handshakes: Callable[[Any], Iterable[Any]],
) -> Deferred[IProtocol]:
    """``endpoint.connect(factory)``, fired only once the connection's
    handshake is done: ``handshakes(connected)`` gives the protocols that run
    it (each with a ``ready`` Deferred, firing with the protocol to hand on,
    or failing, and a ``transport``).  Cancelling aborts a handshake under way.
    """
    running: list[Any] = []

    def cancel(_: Deferred[IProtocol]) -> None:
        connecting.cancel()
        for handshake in running:
            if not handshake.ready.called and handshake.transport is not None:
                handshake.transport.abortConnection()

    result: Deferred[IProtocol] = Deferred(cancel)

    def connected(protocol: Any) -> None:
        for handshake in handshakes(protocol):
            running.append(handshake)
            handshake.ready.addCallbacks(done, failed)

    def done(protocol: IProtocol) -> None:
        if not result.called:
            result.callback(protocol)

    def failed(failure: Failure) -> None:
        if not result.called:
            result.errback(failure)

    connecting: Deferred[Any] = endpoint.connect(factory)
    connecting.addCallbacks(connected, failed)
    return result
