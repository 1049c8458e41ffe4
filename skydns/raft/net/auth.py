"""Cluster-key authentication of Raft connections.

Every node of a cluster started with ``--cluster-key-file`` (or
``SKYDNS_CLUSTER_KEY``, or one derived from ``--secret``) proves, on every
Raft connection and in both directions, that it knows the key, before a
single AMP byte is read:

1. each side sends ``HELLO``: ``MAGIC``, a fresh 32-byte random nonce, its
   own node id and the id of the member it means to reach (empty when it
   does not know it: a node joining through an address);
2. each side checks that the other meant to reach it, then sends its proof,
   ``HMAC-SHA256(key, MAGIC + role + transcript)``: ``role`` is ``b"C"``
   for the side that connected and ``b"S"`` for the side that accepted, the
   transcript both nonces and both ids;
3. each side checks the other's proof in constant time.  Only then does the
   wrapped (AMP) protocol exist; every byte after the proofs travels in
   frames MACed with keys derived from the transcript (`skydns.raft.net.sealed`).

So a relay gains nothing: a connection meant for one member and handed to
another fails the id check, or the proofs, and a relay that only passes
bytes along cannot add, change or replay any of them.

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

import hmac
import os
from collections.abc import Iterable
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

from skydns.raft.net.droplog import RateLimitedLog, connect_when_ready
from skydns.raft.net.handshake import (
    HELLO_SIZE,
    NONCE_SIZE,
    PROOF_SIZE,
    hello,
    parse_hello,
    proof,
    transcript,
)
from skydns.raft.net.sealed import BadFrame, Opener, Sealer, session_keys

log = Logger()

#: Seconds a connection may take to authenticate.
DEFAULT_TIMEOUT = 5.0
#: Connections still authenticating at once; more are dropped at once.
MAX_PENDING = 256

class AuthenticationFailed(Exception):
    """The other side did not prove the cluster key."""


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
        #: The other side's id, as it claims it (proven by its proof).
        self.peer_id = ""
        self._transcript = b""
        self._sealer: Sealer | None = None
        self._opener: Opener | None = None
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
        factory = self.factory
        self._transport().write(hello(self._nonce, factory.node_id, factory.peer_id))

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
            self._open(data)
            return
        if self.failed:
            return
        self._buffer += data
        if self._peer_nonce is None and not self._hello():
            return
        if len(self._buffer) < PROOF_SIZE:
            return
        given, rest = self._buffer[:PROOF_SIZE], self._buffer[PROOF_SIZE:]
        self._buffer = b""
        if not hmac.compare_digest(given, self._proof(mine=False)):
            self._fail("wrong cluster key")
            return
        self._authenticated(rest)

    def _hello(self) -> bool:
        """Read the other side's ``HELLO`` and send our proof; whether it was
        whole and acceptable."""
        factory = self.factory
        try:
            parsed = parse_hello(self._buffer)
        except ValueError as e:
            self._fail(str(e) if "handshake" in str(e) else "a malformed handshake")
            return False
        if parsed is None:
            if len(self._buffer) > HELLO_SIZE + 2 * 256:
                self._fail("a malformed handshake")
            return False
        nonce, peer_id, meant, used = parsed
        self._buffer = self._buffer[used:]
        if nonce == self._nonce:
            self._fail("it sent our own nonce back")
            return False
        if meant and meant != factory.node_id:
            self._fail(f"it meant to reach {meant!r}, not this node ({factory.node_id!r})")
            return False
        if factory.peer_id and peer_id != factory.peer_id:
            self._fail(f"it is {peer_id!r}, not {factory.peer_id!r}")
            return False
        self._peer_nonce, self.peer_id = nonce, peer_id
        if factory.is_client:
            self._transcript = transcript(self._nonce, nonce, factory.node_id, peer_id)
        else:
            self._transcript = transcript(nonce, self._nonce, peer_id, factory.node_id)
        self._transport().write(self._proof(mine=True))
        return True

    def _proof(self, mine: bool) -> bytes:
        role = b"C" if self.factory.is_client == mine else b"S"
        return proof(self.factory.key, role, self._transcript)

    def _open(self, data: bytes) -> None:
        assert self._opener is not None
        try:
            payloads = self._opener.open(data)
        except BadFrame as e:
            self.authenticated = False
            wrapped, self.wrappedProtocol = self.wrappedProtocol, None  # type: ignore[assignment]
            self._fail(f"{e} (after the handshake)")
            wrapped.connectionLost(Failure(ConnectionDone(str(e))))
            return
        for payload in payloads:
            if self.wrappedProtocol is None:
                return
            self.wrappedProtocol.dataReceived(payload)

    def write(self, data: bytes) -> None:
        if self._sealer is not None and self.transport is not None:
            self.transport.write(self._sealer.seal(data))

    def writeSequence(self, data: Iterable[bytes]) -> None:  # noqa: N802 - Twisted's name
        self.write(b"".join(data))

    def _authenticated(self, rest: bytes) -> None:
        self._cancel_timeout()
        wrapped = self.factory.wrappedFactory.buildProtocol(self.addr)
        if wrapped is None:
            self.failed = True
            self._transport().loseConnection()
            if not self.ready.called:
                self.ready.errback(AuthenticationFailed("the connection was refused"))
            return
        client_to_server, server_to_client = session_keys(self.factory.key, self._transcript)
        mine, theirs = (
            (client_to_server, server_to_client) if self.factory.is_client
            else (server_to_client, client_to_server)
        )  # fmt: skip
        self._sealer, self._opener = Sealer(mine), Opener(theirs)
        self.authenticated = True
        self.wrappedProtocol = wrapped
        wrapped.makeConnection(self)
        if not self.ready.called:
            self.ready.callback(wrapped)
        if rest and self.transport is not None and not self.disconnecting:
            self._open(rest)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel_timeout()
        self.factory.unregisterProtocol(self)
        if self.authenticated and self.wrappedProtocol is not None:
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
        node_id: str = "",
        peer_id: str = "",
    ) -> None:
        super().__init__(wrappedFactory)
        #: This node's id, and (connecting) the member it means to reach.
        self.node_id = node_id
        self.peer_id = peer_id
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
        node_id: str = "",
        peer_id: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.node_id = node_id
        self.peer_id = peer_id
        self.key = key
        self.clock = clock
        self.timeout = timeout
        self.log = drop_log if drop_log is not None else RateLimitedLog(clock)

    def _handshake_factory(
        self, protocolFactory: IProtocolFactory, is_client: bool
    ) -> HandshakeFactory:
        return HandshakeFactory(
            protocolFactory, self.key, self.clock, is_client=is_client,
            timeout=self.timeout, drop_log=self.log, node_id=self.node_id,
            peer_id=self.peer_id if is_client else "",
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


def wrap_endpoints(
    key: bytes | None,
    server: IStreamServerEndpoint,
    clients: dict[str, IStreamClientEndpoint],
    clock: IReactorTime,
    timeout: float = DEFAULT_TIMEOUT,
    node_id: str = "",
    drop_log: RateLimitedLog | None = None,
) -> tuple[IStreamServerEndpoint, dict[str, IStreamClientEndpoint]]:
    """``server`` and ``clients`` (by the id of the member each reaches, ""
    for one not known) requiring ``key``, as node ``node_id``; unchanged
    when there is no key."""
    if key is None:
        return server, clients
    log = drop_log if drop_log is not None else RateLimitedLog(clock)

    def wrap(peer_id: str, endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
        return AuthClientEndpoint(endpoint, key, clock, timeout, log, node_id, peer_id)

    return (
        AuthServerEndpoint(server, key, clock, timeout, log, node_id),
        {peer_id: wrap(peer_id, ep) for peer_id, ep in clients.items()},
    )


__all__ = [
    "AuthClientEndpoint",
    "AuthServerEndpoint",
    "AuthenticationFailed",
    "HandshakeFactory",
    "wrap_endpoints",
]
