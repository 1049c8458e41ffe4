"""The DNS server: UDP and TCP on one address, answering from a resolver.

`SkyDNSServerFactory` is a `twisted.names.server.DNSServerFactory` that

- sets AA on every answer whose answer or authority records come from the
  authority (NODATA and NXDOMAIN included), and puts the SOA of a
  `NameNotFound` in the authority section (RFC 2308 §2.1);
- answers REFUSED when no resolver claims the name (a bare
  `twisted.names.error.DomainError` out of the chain: no forwarder);
- never lets a malformed packet escape: undecodable packets are dropped,
  responses are ignored, a question count other than one gets FORMERR,
  other opcodes NOTIMP;
- limits UDP answers to 512 bytes, or to the payload size the client
  advertises with EDNS0 (at most `MAX_UDP_PAYLOAD`): a bigger answer is sent
  as the question alone with TC set, so the client asks again over TCP
  (RFC 1035 §4.2.1, RFC 6891 §6.2.5).  A request with an OPT record gets one
  back.

`DNSService` listens with it on UDP and TCP, same address and port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.names import dns, error
from twisted.names.server import DNSServerFactory
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from skydns.dns.authority import NameNotFound, QueryRefused
from skydns.dns.forward import Forwarder, ForwardingServerMixin

log = Logger()

#: The UDP payload every DNS client accepts (RFC 1035 §2.3.4).
MIN_UDP_PAYLOAD = 512
#: The largest EDNS0 UDP payload we send (and advertise in our OPT record).
MAX_UDP_PAYLOAD = 4096
#: A DNS message over TCP has a 16-bit length prefix (RFC 1035 §4.2.2).
MAX_TCP_MESSAGE = 65535
#: Seconds an idle TCP connection is kept (RFC 7766 §6.2.3 suggests seconds).
TCP_IDLE_TIMEOUT = 10

#: Rcodes for the errors a resolver chain fails with, most specific first.
_ERROR_RCODES: Sequence[tuple[type[BaseException], int]] = (
    (NameNotFound, dns.ENAME),
    (QueryRefused, dns.EREFUSED),
    (error.DNSQueryRefusedError, dns.EREFUSED),
    (error.DNSFormatError, dns.EFORMAT),
    (error.DNSNotImplementedError, dns.ENOTIMP),
    (error.DNSServerError, dns.ESERVER),
    (error.DNSUnknownError, dns.ESERVER),
    (error.DNSNameError, dns.ENAME),
    (error.AuthoritativeDomainError, dns.ENAME),
    (defer.TimeoutError, dns.ESERVER),
    (error.DomainError, dns.ENAME),
)


def rcode_for(reason: BaseException) -> Optional[int]:
    """The response code for a failed lookup; None for an unexpected error."""
    if type(reason) is error.DomainError:
        # No resolver in the chain took the name: we are not a resolver for it.
        return dns.EREFUSED
    for kind, rcode in _ERROR_RCODES:
        if isinstance(reason, kind):
            return rcode
    return None


def encode_reply(message: dns.Message, limit: int) -> bytes:
    """``message`` on the wire, or, if that exceeds ``limit`` bytes, its
    header and question alone with TC set (never a record cut in half, as
    `dns.Message.encode` would do)."""
    data = _to_bytes(message)
    if len(data) <= limit:
        return data
    short = dns.Message(
        id=message.id,
        answer=1,
        opCode=message.opCode,
        recDes=message.recDes,
        recAv=message.recAv,
        auth=message.auth,
        rCode=message.rCode,
        trunc=1,
        maxSize=0,
    )
    short.queries = list(message.queries)
    short.additional = [r for r in message.additional if r.type == dns.OPT]
    return _to_bytes(short)


def _to_bytes(message: dns.Message) -> bytes:
    saved = message.maxSize
    message.maxSize = 0
    try:
        return message.toStr()
    finally:
        message.maxSize = saved


def udp_limit(request: dns.Message) -> int:
    """How big a UDP answer to ``request`` may be: 512 bytes, or the EDNS0
    payload size it advertises (RFC 6891 §6.2.3, §6.2.5), capped."""
    for record in request.additional:
        if record.type == dns.OPT:
            return max(MIN_UDP_PAYLOAD, min(record.cls, MAX_UDP_PAYLOAD))
    return MIN_UDP_PAYLOAD


class _DatagramProtocol(dns.DNSDatagramProtocol):
    """DNS over UDP, answering within the request's size limit."""

    def writeMessage(self, message: dns.Message, address: Any) -> None:
        transport: Any = self.transport
        if transport is None:  # stopped while the answer was pending
            return
        transport.write(encode_reply(message, message.maxSize or MIN_UDP_PAYLOAD), address)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        try:
            super().datagramReceived(data, addr)
        except Exception:
            log.failure("dropped a DNS packet from {addr}", addr=addr)


class _StreamProtocol(dns.DNSProtocol, TimeoutMixin):
    """DNS over TCP, closing connections idle for the factory's timeout."""

    factory: SkyDNSServerFactory

    #: Fires when the connection is gone (`DNSService.stopService` waits).
    lost: defer.Deferred[None]

    def connectionMade(self) -> None:
        self.lost = defer.Deferred()
        super().connectionMade()
        self.setTimeout(self.factory.idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        super().connectionLost(reason)
        self.lost.callback(None)

    def stringReceived(self, data: bytes) -> None:
        try:
            super().stringReceived(data)
        except Exception:
            transport: Any = self.transport
            log.failure("dropped a DNS message from {peer}", peer=transport.getPeer())

    def writeMessage(self, message: dns.Message) -> None:
        if self.transport is None or not self.connected:
            return
        self.sendString(encode_reply(message, MAX_TCP_MESSAGE))


class SkyDNSServerFactory(ForwardingServerMixin, DNSServerFactory):
    """Serves ``resolver`` (see `skydns.dns.authority.make_resolver`) to
    `_DatagramProtocol` and `_StreamProtocol` connections.

    Names no resolver in the chain claims go to ``forwarder`` (over the
    client's transport) when there is one, else get REFUSED.
    """

    protocol = _StreamProtocol  # type: ignore[assignment]

    def __init__(
        self,
        resolver: Any,
        reactor: Any = None,
        can_recurse: bool = False,
        idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
        forwarder: Optional[Forwarder] = None,
    ) -> None:
        super().__init__()
        self.resolver = resolver
        self.forwarder = forwarder  # type: ignore[assignment]
        self.canRecurse = can_recurse or forwarder is not None
        self.reactor = reactor
        self.idle_timeout = idle_timeout

    def buildProtocol(self, addr: Any) -> Any:
        protocol = _StreamProtocol(self, self.reactor)
        protocol.factory = self
        return protocol

    def datagram_protocol(self) -> _DatagramProtocol:
        """A UDP protocol answering through this factory."""
        return _DatagramProtocol(self, self.reactor)

    def messageReceived(self, message: dns.Message, proto: Any, address: Any = None) -> None:
        if message.answer:
            return  # A response is not a question: answering it could loop.
        message.maxSize = MAX_TCP_MESSAGE if address is None else udp_limit(message)
        options = [r for r in message.additional if r.type == dns.OPT]
        if message.opCode != dns.OP_QUERY:
            self._reply_error(message, proto, address, dns.ENOTIMP)
        elif len(message.queries) != 1 or len(options) > 1:
            # One question per message (RFC 9619); one OPT (RFC 6891 §6.1.1).
            self._reply_error(message, proto, address, dns.EFORMAT)
        elif message.queries[0].cls not in (dns.IN, dns.ANY):
            self._reply_error(message, proto, address, dns.EREFUSED)
        else:
            self.handleQuery(message, proto, address)

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> Any:
        d = super().handleQuery(message, protocol, address)
        d.addErrback(
            lambda reason: log.failure("could not answer {query}", reason, query=message.queries[0])
        )
        return d

    def gotResolverError(
        self, failure: Failure, protocol: Any, message: dns.Message, address: Any
    ) -> None:
        reason: Any = failure.value
        if type(reason) is error.DomainError and self.forwarder is not None:
            self.forward_query(message, protocol, address)
            return
        rcode = rcode_for(reason)
        if rcode is None:
            log.failure("lookup of {query} failed", failure, query=message.queries[0])
            rcode = dns.ESERVER
        authority = reason.authority if isinstance(reason, NameNotFound) else None
        response = self._responseFromMessage(message=message, rCode=rcode, authority=authority)
        self.sendReply(protocol, response, address)

    def _reply_error(self, message: dns.Message, protocol: Any, address: Any, rcode: int) -> None:
        self.sendReply(protocol, self._responseFromMessage(message, rCode=rcode), address)

    def _responseFromMessage(
        self,
        message: dns.Message,
        rCode: int = dns.OK,
        answers: Optional[list[dns.RRHeader]] = None,
        authority: Optional[list[dns.RRHeader]] = None,
        additional: Optional[list[Any]] = None,
    ) -> dns.Message:
        answers = list(answers or ())
        authority = list(authority or ())
        additional = list(additional or ())
        # AA for NODATA and NXDOMAIN too, whose only records are the SOA.
        authoritative = any(r.isAuthoritative() for r in answers + authority)
        response = dns._responseFromMessage(
            responseConstructor=self._messageFactory,
            message=message,
            recAv=self.canRecurse,
            rCode=rCode,
            auth=authoritative,
        )
        response.recDes = message.recDes  # RFC 1035 §4.1.1: RD is copied.
        response.maxSize = message.maxSize
        if any(r.type == dns.OPT for r in message.additional):
            additional.append(dns._OPTHeader(udpPayloadSize=MAX_UDP_PAYLOAD))
        response.answers = answers
        response.authority = authority
        response.additional = additional
        return response

    def sendReply(self, protocol: Any, message: dns.Message, address: Any) -> None:
        if address is None:
            protocol.writeMessage(message)
        else:
            protocol.writeMessage(message, address)


class DNSService(MultiService):
    """Answers DNS with ``resolver`` on UDP and TCP at ``interface``:``port``.

    ``interface`` is an IPv4 or IPv6 literal.  With ``port`` 0 both sockets
    get the same free port; `port` holds the bound number once started.
    ``reactor`` defaults to the global one.
    """

    def __init__(
        self,
        resolver: Any,
        interface: str = "127.0.0.1",
        port: int = 8053,
        reactor: Any = None,
        can_recurse: bool = False,
        idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
        forwarder: Optional[Forwarder] = None,
    ) -> None:
        super().__init__()
        self.resolver = resolver
        self.interface = interface
        self.requested_port = port
        self._reactor = reactor
        self.forwarder = forwarder
        self.factory = SkyDNSServerFactory(
            resolver, reactor, can_recurse, idle_timeout, forwarder=forwarder
        )
        self.port: Optional[int] = None
        self.udp_listener: Any = None
        self.tcp_listener: Any = None

    def _get_reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
            self.factory.reactor = reactor
        return self._reactor

    def startService(self) -> None:
        reactor = self._get_reactor()
        # With port 0 the TCP socket may find the UDP port taken: try anew.
        attempts = 20 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            udp = reactor.listenUDP(
                self.requested_port,
                self.factory.datagram_protocol(),
                interface=self.interface,
                maxPacketSize=MAX_TCP_MESSAGE,
            )
            bound = udp.getHost().port
            try:
                tcp = reactor.listenTCP(bound, self.factory, interface=self.interface)
            except CannotListenError:
                udp.stopListening()
                if attempt == attempts - 1:
                    raise
                continue
            self.udp_listener, self.tcp_listener, self.port = udp, tcp, bound
            break
        super().startService()
        log.info(
            "DNS listening on {interface} port {port} (UDP and TCP)",
            interface=self.interface,
            port=self.port,
        )

    def stopService(self) -> "defer.Deferred[Any]":
        stopping = [defer.maybeDeferred(super().stopService)]
        if self.forwarder is not None:
            self.forwarder.stop()
        for listener in (self.udp_listener, self.tcp_listener):
            if listener is not None:
                stopping.append(defer.maybeDeferred(listener.stopListening))
        self.udp_listener = self.tcp_listener = None
        for connection in list(self.factory.connections):
            stopping.append(connection.lost)
            connection.transport.loseConnection()
        return defer.gatherResults(stopping, consumeErrors=True)
