"""Cluster-key authentication of Raft connections.

Every node of a cluster started with ``--cluster-key-file`` (or
``SKYDNS_CLUSTER_KEY``) proves, on every Raft connection and in both
directions, that it knows the key, before a single AMP byte is read:

1. each side sends ``MAGIC`` and a fresh 32-byte random nonce (``HELLO``);
2. on the other side's ``HELLO``, each side sends its proof,
   ``HMAC-SHA256(key, MAGIC + role + client_nonce + server_nonce)``, where
   ``role`` is ``b"C"`` for the side that connected and ``b"S"`` for the
   side that accepted (so neither side's proof can be replayed as the
   other's, and a nonce reflected back is refused);
3. each side checks the other's proof in constant time.  Only then does the
   wrapped (AMP) protocol exist: it is built, connected, and given whatever
   bytes followed the proof.

A connection that sends anything else, proves a wrong key, or does not
finish within ``timeout`` seconds is dropped and logged (at most one line
per reason every `LOG_INTERVAL` seconds, with a count of those left out);
no Raft protocol is ever built for it, so the node's log and state cannot be
touched.  The key authenticates; it does not encrypt: use TLS endpoints as
well when the network between nodes is not trusted (docs/security.md).

The wrappers are endpoints, like ``wrapClientTLS``: `AuthServerEndpoint`
wraps the listening endpoint and `AuthClientEndpoint` each peer's, so the
rest of the transport is unchanged (a client connection's Deferred fires
with the wrapped protocol only once both sides are authenticated).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from skydns.throttle import LogThrottle, address_text

log = Logger()

#: First bytes of every authenticated Raft connection (protocol version 1).
MAGIC = b"SKYDNS-RAFTAUTH1"
NONCE_SIZE = 32
PROOF_SIZE = hashlib.sha256().digest_size
HELLO_SIZE = len(MAGIC) + NONCE_SIZE
#: Seconds a connection may take to authenticate.
DEFAULT_TIMEOUT = 5.0
#: Connections still authenticating at once; more are dropped at once.
MAX_PENDING = 256
#: At most one log line per reason in this many seconds.
LOG_INTERVAL = 10.0

class AuthenticationFailed(Exception):
    """The other side did not prove the cluster key."""


def proof(key: bytes, role: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """What the side playing ``role`` (``b"C"`` or ``b"S"``) sends."""
    message = MAGIC + role + client_nonce + server_nonce
    return hmac.new(key, message, hashlib.sha256).digest()


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


class HandshakeProtocol(ProtocolWrapper):
    """Runs the handshake, then relays to a protocol built only then."""

    factory: HandshakeFactory

    def __init__(self, factory: HandshakeFactory, addr: IAddress | None) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self.addr = addr
        self.authenticated = False
        self.failed = False
        self._buffer = b""
        self._nonce = os.urandom(NONCE_SIZE)
        self._peer_nonce: bytes | None = None
        self._timeout: IDelayedCall | None = None
        #: Fires with the wrapped protocol once authenticated, or fails.
        self.ready: Deferred[IProtocol] = Deferred()
        if not factory.is_client:
            self.ready.addErrback(lambda _: None)  # a drop is logged, not raised

    def logPrefix(self) -> str:
        return "RaftAuth"

    def _transport(self) -> Any:
        return self.transport

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))
        self.factory.registerProtocol(self)
        Protocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        if self.factory.pending() > self.factory.max_pending:
            self._fail("too many connections authenticating at once")
            return
        self._timeout = self.factory.clock.callLater(self.factory.timeout, self._timed_out)
        self._transport().write(MAGIC + self._nonce)

    def _timed_out(self) -> None:
        self._timeout = None
        self._fail(f"no authentication within {self.factory.timeout:g} seconds")

    def _fail(self, reason: str) -> None:
        if self.failed:
            return
        self.failed = True
        self._cancel_timeout()
        peer = self.transport.getPeer() if self.transport is not None else self.addr
        self.factory.log.dropped_connection(reason, peer)
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self._transport().loseConnection()
        if not self.ready.called:
            self.ready.errback(AuthenticationFailed(reason))

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def dataReceived(self, data: bytes) -> None:
        if self.authenticated:
            self.wrappedProtocol.dataReceived(data)
            return
        if self.failed:
            return
        self._buffer += data
        if self._peer_nonce is None:
            seen = self._buffer[: len(MAGIC)]
            if not MAGIC.startswith(seen):
                self._fail("it did not start the cluster-key handshake")
                return
            if len(self._buffer) < HELLO_SIZE:
                return
            self._peer_nonce = self._buffer[len(MAGIC) : HELLO_SIZE]
            self._buffer = self._buffer[HELLO_SIZE:]
            if self._peer_nonce == self._nonce:
                self._fail("it sent our own nonce back")
                return
            self._transport().write(self._proof(mine=True))
        if len(self._buffer) < PROOF_SIZE:
            return
        given, rest = self._buffer[:PROOF_SIZE], self._buffer[PROOF_SIZE:]
        self._buffer = b""
        if not hmac.compare_digest(given, self._proof(mine=False)):
            self._fail("wrong cluster key")
            return
        self._authenticated(rest)

    def _proof(self, mine: bool) -> bytes:
        assert self._peer_nonce is not None
        client = self.factory.is_client
        if client:
            client_nonce, server_nonce = self._nonce, self._peer_nonce
        else:
            client_nonce, server_nonce = self._peer_nonce, self._nonce
        role = b"C" if client == mine else b"S"
        return proof(self.factory.key, role, client_nonce, server_nonce)

    def _authenticated(self, rest: bytes) -> None:
        self._cancel_timeout()
        wrapped = self.factory.wrappedFactory.buildProtocol(self.addr)
        if wrapped is None:
            self.failed = True
            self._transport().loseConnection()
            if not self.ready.called:
                self.ready.errback(AuthenticationFailed("the connection was refused"))
            return
        self.authenticated = True
        self.wrappedProtocol = wrapped
        wrapped.makeConnection(self)
        if not self.ready.called:
            self.ready.callback(wrapped)
        if rest and self.transport is not None and not self.disconnecting:
            wrapped.dataReceived(rest)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_timeout()
        self.factory.unregisterProtocol(self)
        if self.authenticated:
            self.wrappedProtocol.connectionLost(reason or Failure(ConnectionDone()))
            self.wrappedProtocol = None  # type: ignore[assignment]
        elif not self.ready.called:
            self.failed = True
            why = "" if reason is None else f": {reason.value}"
            self.ready.errback(AuthenticationFailed(f"connection lost while authenticating{why}"))


class HandshakeFactory(WrappingFactory):
    """Wraps ``wrappedFactory``: its protocols exist only once authenticated."""

    protocol = HandshakeProtocol  # type: ignore[assignment]

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        key: bytes,
        clock: IReactorTime,
        is_client: bool,
        timeout: float = DEFAULT_TIMEOUT,
        drop_log: RateLimitedLog | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        super().__init__(wrappedFactory)
        self.key = key
        self.clock = clock
        self.is_client = is_client
        self.timeout = timeout
        self.log = drop_log if drop_log is not None else RateLimitedLog(clock)
        self.max_pending = max_pending
        self.noisy = False

    def buildProtocol(self, addr: IAddress | None) -> HandshakeProtocol:  # type: ignore[override]
        return HandshakeProtocol(self, addr)

    def pending(self) -> int:
        """Connections still authenticating."""
        return sum(1 for p in self.protocols if not p.authenticated)


class _AuthEndpoint:
    """What both ends of an authenticated connection hold: the endpoint
    underneath, the key, the clock for the handshake's deadline, and the
    rate-limited log of dropped connections."""

    def __init__(
        self,
        endpoint: Any,
        key: bytes,
        clock: IReactorTime,
        timeout: float = DEFAULT_TIMEOUT,
        drop_log: RateLimitedLog | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self.clock = clock
        self.timeout = timeout
        self.log = drop_log if drop_log is not None else RateLimitedLog(clock)

    def _handshake_factory(
        self, protocolFactory: IProtocolFactory, is_client: bool
    ) -> HandshakeFactory:
        return HandshakeFactory(
            protocolFactory, self.key, self.clock, is_client=is_client,
            timeout=self.timeout, drop_log=self.log,
        )  # fmt: skip


@implementer(IStreamServerEndpoint)
class AuthServerEndpoint(_AuthEndpoint):
    """Listens on ``endpoint``; every connection must prove ``key`` first."""

    endpoint: IStreamServerEndpoint

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        factory = self._handshake_factory(protocolFactory, is_client=False)
        listening: Deferred[IListeningPort] = self.endpoint.listen(factory)
        return listening


@implementer(IStreamClientEndpoint)
class AuthClientEndpoint(_AuthEndpoint):
    """Connects through ``endpoint``; the Deferred fires with the wrapped
    protocol once both sides proved ``key`` (else it fails with
    `AuthenticationFailed`, and a `ClientService` retries with backoff)."""

    endpoint: IStreamClientEndpoint

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        factory = self._handshake_factory(protocolFactory, is_client=True)
        return connect_when_ready(self.endpoint, factory, lambda protocol: [protocol])


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


def wrap_endpoints(
    key: bytes | None,
    server: IStreamServerEndpoint,
    clients: dict[str, IStreamClientEndpoint],
    clock: IReactorTime,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[IStreamServerEndpoint, dict[str, IStreamClientEndpoint]]:
    """``server`` and ``clients`` requiring ``key``; unchanged when it is None."""
    if key is None:
        return server, clients
    drop_log = RateLimitedLog(clock)

    def wrap(endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
        return AuthClientEndpoint(endpoint, key, clock, timeout, drop_log)

    return (
        AuthServerEndpoint(server, key, clock, timeout, drop_log),
        {peer_id: wrap(ep) for peer_id, ep in clients.items()},
    )


__all__ = [
    "AuthClientEndpoint",
    "AuthServerEndpoint",
    "AuthenticationFailed",
    "HandshakeFactory",
    "RateLimitedLog",
    "wrap_endpoints",
]
