"""Asking one upstream nameserver one question: `NetworkClient` sends it over
UDP (from a socket of its own, so a reply can only come from the upstream
asked) or TCP and returns the validated response; the forwarder decides what
to do with it."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.names import dns
from twisted.protocols.basic import Int16StringReceiver
from zope.interface import Interface, implementer

from skydns.dns.upstreams import Upstream


class BadResponse(Exception):
    """An upstream sent something that is not the answer to our question."""


class IUpstreamClient(Interface):
    """Asks one upstream one question (the forwarder's view of the network)."""

    def query(  # type: ignore[misc, empty-body]
        upstream: Upstream, request: dns.Message, tcp: bool
    ) -> Deferred[dns.Message]:
        """Send ``request`` to ``upstream``; fire with its validated response.

        Cancelling the Deferred closes the socket.
        """

    def is_own_address(host: str, port: int) -> bool:  # type: ignore[misc, empty-body]
        """Whether ``host:port`` is the local end of one of our open upstream sockets."""


class UpstreamClient(Protocol):
    """`IUpstreamClient` for mypy, which does not read zope interfaces."""

    def query(
        self, upstream: Upstream, request: dns.Message, tcp: bool
    ) -> Deferred[dns.Message]: ...

    def is_own_address(self, host: str, port: int) -> bool: ...


def _normal_host(host: str) -> str:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def answers(request: dns.Message, data: bytes) -> dns.Message | None:
    """``data`` parsed, if it is a response to ``request`` (same id, same question,
    RFC 5452 §9.1); else None.  A bare error reply without a question section is
    accepted: some servers answer FORMERR that way."""
    response = dns.Message()
    try:
        response.fromStr(data)
    except Exception:  # hostile or broken bytes: not our answer
        return None
    if not response.answer or response.id != request.id:
        return None
    if not response.queries:
        return response if response.rCode != dns.OK else None
    asked, got = request.queries[0], response.queries[0]
    if (
        len(response.queries) != 1
        or got.name.name.lower() != asked.name.name.lower()
        or (got.type, got.cls) != (asked.type, asked.cls)
    ):
        return None
    return response


@implementer(IReadDescriptor)
class _UDPExchange:
    """One question over a fresh, connected UDP socket (random source port,
    replies from other addresses are filtered by the kernel).

    The reactor reads the socket directly: a ``listenUDP`` port would log
    two lines as it opens and closes, and a forwarder opens one per question.
    """

    def __init__(
        self, reactor: Any, upstream: Upstream, request: dns.Message,
        result: Deferred[dns.Message],
    ) -> None:  # fmt: skip
        self._reactor = reactor
        self.request = request
        self.result = result
        family = socket.AF_INET6 if upstream.is_ipv6 else socket.AF_INET
        self.socket: socket.socket | None = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.socket.setblocking(False)
            self.socket.bind(("::" if upstream.is_ipv6 else "0.0.0.0", 0))
            self.socket.connect(upstream.address)
        except OSError:
            self.socket.close()
            raise
        reactor.addReader(self)

    def host(self) -> tuple[str, int]:
        assert self.socket is not None
        address = self.socket.getsockname()
        return address[0], address[1]

    def send(self, data: bytes) -> None:
        assert self.socket is not None
        self.socket.send(data)

    def fileno(self) -> int:
        return -1 if self.socket is None else self.socket.fileno()

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "upstream UDP"

    def doRead(self) -> None:  # noqa: N802 - Twisted's name
        for _ in range(16):  # whatever is queued, within reason
            if self.socket is None:
                return
            try:
                data = self.socket.recv(65535)
            except BlockingIOError:
                return
            except OSError as e:  # an ICMP error (port unreachable) on the connected socket
                self._refused(f"ICMP error: {e.strerror or e}")
                return
            response = answers(self.request, data)
            if response is not None and not self.result.called:
                self.result.callback(response)

    def connectionLost(self, reason: Any) -> None:  # noqa: N802 - Twisted's name
        # epoll reports an ICMP error left on the socket as a hang-up (EPOLLERR)
        # and the reactor drops the descriptor: the question failed.
        self.close()
        self._refused("UDP socket closed by an ICMP error")

    def _refused(self, why: str) -> None:
        if not self.result.called:
            self.result.errback(ConnectionRefusedError(string=why))

    def close(self) -> None:
        if self.socket is None:
            return
        self._reactor.removeReader(self)
        self.socket.close()
        self.socket = None


class _QuietFactory(Factory):
    """Builds one prepared protocol, without Twisted's "Starting factory" lines."""

    noisy = False

    def __init__(self, protocol: TwistedProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> TwistedProtocol:  # noqa: N802 - Twisted's name
        return self._protocol


class _TCPExchange(Int16StringReceiver):
    """One question over a fresh TCP connection (RFC 1035 §4.2.2 length prefix)."""

    def __init__(self, request: dns.Message) -> None:
        self.request = request
        self.reply: Deferred[dns.Message] = Deferred()

    def connectionMade(self) -> None:
        self.sendString(self.request.toStr())

    def stringReceived(self, string: bytes) -> None:
        if self.reply.called:
            return
        response = answers(self.request, string)
        if response is None:
            self.reply.errback(BadResponse("TCP reply does not answer the question"))
        else:
            self.reply.callback(response)
        self.transport.loseConnection()  # type: ignore[union-attr, misc]

    def connectionLost(self, reason: Any = None) -> None:
        if not self.reply.called:
            self.reply.errback(reason)


@implementer(IUpstreamClient)
class NetworkClient:
    """Talks to upstreams over real sockets from ``reactor`` (IReactorUDP, IReactorTCP).

    Every question gets its own socket, so its source port is random (RFC 5452
    §9.2) and a TCP connection never carries two questions.
    """

    def __init__(self, reactor: Any, tls_trust: Any = None) -> None:
        self._reactor = reactor
        self._own: set[tuple[str, int]] = set()
        #: What TLS upstreams' certificates are checked against (an
        #: ``IOpenSSLTrustRoot``): the system's CAs unless given.
        self._tls_trust = tls_trust

    def is_own_address(self, host: str, port: int) -> bool:
        return (_normal_host(host), port) in self._own

    def query(self, upstream: Upstream, request: dns.Message, tcp: bool) -> Deferred[dns.Message]:
        if tcp or upstream.tls_name is not None:  # a TLS upstream: over TLS, whatever came in
            return Deferred.fromCoroutine(self._tcp(upstream, request))
        return self._udp(upstream, request)

    def _remember(self, transport: Any) -> tuple[str, int]:
        local = transport.getHost()
        own = (_normal_host(local.host), local.port)
        self._own.add(own)
        return own

    def _udp(self, upstream: Upstream, request: dns.Message) -> Deferred[dns.Message]:
        exchange: _UDPExchange | None = None
        own: tuple[str, int] | None = None

        def close() -> None:
            if own is not None:
                self._own.discard(own)
            if exchange is not None:
                exchange.close()

        def closed(result: object) -> object:
            close()
            return result

        result: Deferred[dns.Message] = Deferred(lambda d: close())
        try:
            exchange = _UDPExchange(self._reactor, upstream, request, result)
            own = (_normal_host(exchange.host()[0]), exchange.host()[1])
            self._own.add(own)
            exchange.send(request.toStr())
        except Exception:
            close()
            return fail()
        return result.addBoth(closed)

    async def _tcp(self, upstream: Upstream, request: dns.Message) -> dns.Message:
        endpoint_type = TCP6ClientEndpoint if upstream.is_ipv6 else TCP4ClientEndpoint
        endpoint: Any = endpoint_type(self._reactor, upstream.host, upstream.port)
        if upstream.tls_name is not None:
            from twisted.internet import ssl
            from twisted.internet.endpoints import wrapClientTLS

            trust = self._tls_trust if self._tls_trust is not None else ssl.platformTrust()
            options = ssl.optionsForClientTLS(upstream.tls_name, trustRoot=trust)
            endpoint = wrapClientTLS(options, endpoint)
        exchange = _TCPExchange(request)
        await endpoint.connect(_QuietFactory(exchange))
        transport: Any = exchange.transport
        own = self._remember(transport)
        try:
            return await exchange.reply
        finally:
            self._own.discard(own)
            transport.abortConnection()
