"""Mutual TLS between Raft peers (``--raft-tls-ca/-cert/-key``).

Every node holds a certificate signed by the cluster's CA.  Listening, a
node requires a client certificate signed by that CA; connecting, it
presents its own and checks that the peer's is signed by the CA and names
the address it dialled (the host of that peer in ``--peers``, in the
certificate's subjectAltName).  docs/security.md shows the openssl commands.

TLS wraps the TCP endpoints (`wrap_tls`); the cluster key, when also set,
is proven inside the TLS session.  A connection the listener drops before
its TLS handshake finished (garbage, plain text, no certificate or one the
CA did not sign, closed half way) is logged with the peer and the reason,
rate limited as the cluster key's drops are (`RateLimitedLog`).
"""

from __future__ import annotations

from typing import Any

import attrs
from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IListeningPort,
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, CertificateOptions, PrivateCertificate
from twisted.internet.ssl import optionsForClientTLS as client_options
from twisted.internet.task import Clock
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from skydns.raft.net.droplog import RateLimitedLog, connect_when_ready

#: Seconds a client has to finish the TLS handshake before it is dropped.
HANDSHAKE_TIMEOUT = 10.0


@attrs.frozen
class RaftTLS:
    """The cluster CA and this node's certificate with its key."""

    ca: Certificate
    identity: PrivateCertificate

    def server_options(self) -> CertificateOptions:
        """Serve with our certificate; require one signed by the CA."""
        options: CertificateOptions = self.identity.options(self.ca)
        return options

    def client_options(self, host: str) -> IOpenSSLClientConnectionCreator:
        """Present our certificate; want the CA's signature on one for ``host``."""
        return client_options(host, trustRoot=self.ca, clientCertificate=self.identity)


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a key or certificate file; `ValueError` naming it when
    it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def load_tls(ca_path: str, cert_path: str, key_path: str) -> RaftTLS:
    """Read the PEM files; `ValueError` naming the file that is wrong."""
    ca_pem = read_pem(ca_path, "CA certificate")
    cert_pem = read_pem(cert_path, "certificate")
    key_pem = read_pem(key_path, "private key")
    try:
        ca = Certificate.loadPEM(ca_pem)
    except Exception as e:
        raise ValueError(f"{ca_path} is not a PEM certificate: {e}") from None
    try:
        identity = PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
    except Exception as e:
        raise ValueError(
            f"{cert_path} and {key_path} are not a PEM certificate and its key: {e}"
        ) from None
    return RaftTLS(ca, identity)


def handshake_failure(reason: Failure) -> str:
    """Why a connection ended before its TLS handshake finished, in a few
    words: OpenSSL's reason when the handshake failed, else that it closed."""
    words = tls_error(reason)
    if words is None:
        return "closed before the TLS handshake finished"
    return "TLS handshake failed: " + words


def tls_error(reason: Failure) -> str | None:
    """OpenSSL's reasons when ``reason`` is a TLS error (``certificate verify
    failed``, ``tlsv1 alert unknown ca``), else None."""
    error = reason.value
    if not isinstance(error, SSL.Error):
        return None
    # pyOpenSSL: args[0] is OpenSSL's error queue, (library, function, reason).
    queue = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [str(entry[-1]) for entry in queue if isinstance(entry, tuple) and entry]
    return "; ".join(r for r in reasons if r) or repr(error)


#: What a handshake that ran out of time is called in the logs.
TOO_SLOW = f"TLS handshake not finished within {HANDSHAKE_TIMEOUT:g} s"


class _Deadline:
    """`HANDSHAKE_TIMEOUT` for a TLS handshake, armed as the connection is
    made (when there is a clock); `_too_slow` says what then happens."""

    factory: Any
    _deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        clock = self.factory.clock
        if clock is not None:
            self._deadline = clock.callLater(HANDSHAKE_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        raise NotImplementedError

    def _stop_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


@implementer(IHandshakeListener)
class HandshakeWatch(_Deadline, ProtocolWrapper):
    """Sits between TLS and the protocol it carries, on the listening side:
    a connection lost before TLS said the handshake completed, and not
    closed by the protocol above (which logs its own drops), is logged."""

    factory: HandshakeWatchFactory

    def __init__(self, factory: HandshakeWatchFactory, wrapped: IProtocol) -> None:
        super().__init__(factory, wrapped)
        self.handshake_done = False
        self.closed_here = False

    def _too_slow(self) -> None:
        self._deadline = None
        self.factory.drop_log.dropped_connection(TOO_SLOW, self._tls().getPeer())
        self.closed_here = True
        self._tls().abortConnection()

    def handshakeCompleted(self) -> None:
        self.handshake_done = True
        self._stop_deadline()
        # Only a protocol whose class listens: one that copied our interfaces
        # (as the cluster key's wrapper does) would hand the call back to us.
        if IHandshakeListener.implementedBy(type(self.wrappedProtocol)):
            self.wrappedProtocol.handshakeCompleted()  # type: ignore[attr-defined]

    def loseConnection(self) -> None:
        self.closed_here = True
        super().loseConnection()

    def abortConnection(self) -> None:
        self.closed_here = True
        self.disconnecting = 1
        self._tls().abortConnection()

    def _tls(self) -> Any:
        return self.transport

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        if not (self.handshake_done or self.closed_here):
            peer = self._tls().getPeer() if self.transport is not None else None
            self.factory.drop_log.dropped_connection(handshake_failure(reason), peer)
        super().connectionLost(reason)


class HandshakeWatchFactory(WrappingFactory["HandshakeWatch"]):
    """Wraps each protocol of ``wrappedFactory`` in a `HandshakeWatch`."""

    protocol = HandshakeWatch

    def __init__(
        self, wrappedFactory: IProtocolFactory, drop_log: RateLimitedLog,
        clock: IReactorTime | None = None,
    ) -> None:  # fmt: skip
        super().__init__(wrappedFactory)
        self.drop_log = drop_log
        self.clock = clock
        self.noisy = False


def _every_drop() -> RateLimitedLog:
    """A log of drops for callers without a clock: every one, unpaced."""
    return RateLimitedLog(Clock(), interval=0.0)


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """Listens on ``endpoint``, speaking TLS with ``options``; connections
    that fail the handshake go to ``drop_log``.  ``clock`` (the reactor)
    also paces TLS's coalescing of small writes."""

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        options: CertificateOptions,
        clock: IReactorTime | None = None,
        drop_log: RateLimitedLog | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.options = options
        self.clock = clock
        if drop_log is None:
            drop_log = _every_drop() if clock is None else RateLimitedLog(clock)
        self.log = drop_log

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        watched = HandshakeWatchFactory(protocolFactory, self.log, self.clock)
        factory = TLSMemoryBIOFactory(self.options, False, watched, self.clock)
        factory.noisy = False
        listening: Deferred[IListeningPort] = self.endpoint.listen(factory)
        return listening


class TLSHandshakeFailed(Exception):
    """A connection to a peer ended, or stalled, before its TLS handshake
    finished; the message says why in OpenSSL's words (`handshake_failure`)."""


@implementer(IHandshakeListener)
class _ClientHandshake(_Deadline, ProtocolWrapper):
    """Between TLS and the protocol it carries, on the connecting side.

    That protocol is built only once the handshake completed (the peer's
    certificate checked), as the cluster key's handshake does: a connection
    that fails TLS never was a connection to the caller.  ``ready`` fires
    with it then, or fails with `TLSHandshakeFailed`.
    """

    factory: _ClientHandshakeFactory

    def __init__(self, factory: _ClientHandshakeFactory, addr: IAddress | None) -> None:
        super().__init__(factory, None)  # type: ignore[arg-type]
        self.addr = addr
        self.ready: Deferred[IProtocol] = Deferred()
        self._early = b""

    def makeConnection(self, transport: Any) -> None:
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)

    def _too_slow(self) -> None:
        self._deadline = None
        self._failed(TOO_SLOW)
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _failed(self, reason: str) -> None:
        if not self.ready.called:
            self.ready.errback(TLSHandshakeFailed(reason))

    def handshakeCompleted(self) -> None:
        self._stop_deadline()
        if self.ready.called:
            return
        wrapped = self.factory.wrappedFactory.buildProtocol(self.addr)
        if wrapped is None:
            self._failed("the connection was refused")
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.wrappedProtocol = wrapped
        wrapped.makeConnection(self)
        # As `HandshakeWatch` does: only a class that listens itself (the
        # cluster key's wrapper copies our interfaces and would hand it back).
        if IHandshakeListener.implementedBy(type(wrapped)):
            wrapped.handshakeCompleted()  # type: ignore[attr-defined]
        self.ready.callback(wrapped)
        early, self._early = self._early, b""
        if early and not self.disconnecting:
            wrapped.dataReceived(early)

    def dataReceived(self, data: bytes) -> None:
        if self.wrappedProtocol is None:
            self._early += data  # cannot come before the handshake; kept if it does
            return
        self.wrappedProtocol.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.connectionLost(reason)
            self.wrappedProtocol = None  # type: ignore[assignment]
        else:
            self._failed(handshake_failure(reason))


class _ClientHandshakeFactory(WrappingFactory):
    protocol = _ClientHandshake  # type: ignore[assignment]

    def __init__(self, wrappedFactory: IProtocolFactory, clock: IReactorTime | None) -> None:
        super().__init__(wrappedFactory)
        self.clock = clock
        self.noisy = False
        #: The connections made (one per `TLSClientEndpoint.connect`).
        self.built: list[_ClientHandshake] = []

    def buildProtocol(self, addr: IAddress | None) -> _ClientHandshake:  # type: ignore[override]
        handshake = _ClientHandshake(self, addr)
        self.built.append(handshake)
        return handshake


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """Connects through ``endpoint`` speaking TLS with ``creator``.

    Unlike ``wrapClientTLS``, whose Deferred fires once TCP is connected,
    this one fires once the TLS handshake is done, and fails with
    `TLSHandshakeFailed` (OpenSSL's reason) when it is not: a peer whose
    certificate the CA did not sign is a failed attempt to connect, which
    the caller retries and reports, not a connection made and lost.
    ``clock`` bounds the handshake to `HANDSHAKE_TIMEOUT`.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        creator: IOpenSSLClientConnectionCreator,
        clock: IReactorTime | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.creator = creator
        self.clock = clock

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        watched = _ClientHandshakeFactory(protocolFactory, self.clock)
        factory = TLSMemoryBIOFactory(self.creator, True, watched, self.clock)
        factory.noisy = False
        return connect_when_ready(self.endpoint, factory, lambda _: watched.built)


def wrap_tls(
    tls: RaftTLS | None,
    server: IStreamServerEndpoint,
    clients: dict[str, IStreamClientEndpoint],
    hosts: dict[str, str],
    clock: IReactorTime | None = None,
) -> tuple[IStreamServerEndpoint, dict[str, IStreamClientEndpoint]]:
    """``server`` and ``clients`` over mutual TLS (unchanged when ``tls`` is
    None); ``hosts[peer]`` is the name that peer's certificate must carry.
    ``clock`` paces the log of connections the server drops during the
    handshake (without one, every drop is logged) and bounds the clients'
    handshakes."""
    if tls is None:
        return server, clients
    return (
        TLSServerEndpoint(server, tls.server_options(), clock),
        {
            peer: TLSClientEndpoint(endpoint, tls.client_options(hosts[peer]), clock)
            for peer, endpoint in clients.items()
        },
    )


__all__ = [
    "HandshakeWatch",
    "TLSClientEndpoint",
    "TLSHandshakeFailed",
    "HandshakeWatchFactory",
    "RaftTLS",
    "TLSServerEndpoint",
    "handshake_failure",
    "load_tls",
    "wrap_tls",
]
