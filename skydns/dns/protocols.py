"""DNS over UDP and TCP for `skydns.dns.server`: the protocols, the wire
size limits, and a UDP port that answers cache hits in its read loop.

`FastUDPPort` is Twisted's UDP port with a ``doRead`` that looks each
datagram up in the factory's `AnswerCache` and sends a hit back straight
away, and hands only misses to the protocol: no method calls between the
socket and the cache, which at ~100,000 queries a second is most of what
is left to save.

With response rate limiting on (the factory's ``rate_limiter``, see
`skydns.dns.rrl`), every UDP datagram is first put to the limiter, in
``doRead`` and in ``datagramReceived`` alike, before any answer is looked
up: over the limit it gets nothing, or a TC reply.  Every UDP answer more
than three times its query's size goes by the factory's ``large_limiter``
(`skydns.dns.amplification`) on its way out.  TCP is never limited.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Optional, Protocol

from twisted.internet import defer, udp
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.names import dns
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from skydns.dns.amplification import FACTOR, AmplificationLimiter
from skydns.dns.answercache import AnswerCache
from skydns.dns.rrl import ResponseRateLimiter
from skydns.dns.stats import LATENCY_SAMPLE, DNSStats


class PacketHandler(Protocol):
    """What the protocols need of the server behind them (in production
    `skydns.dns.server.SkyDNSServerFactory`): the cache and limiter consulted
    before anything is decoded, and where every other packet goes."""

    answer_cache: Optional[AnswerCache]
    rate_limiter: Optional[ResponseRateLimiter]
    large_limiter: Optional[AmplificationLimiter]
    stats: DNSStats
    idle_timeout: Optional[float]
    timer: Callable[[], float]

    def packet_received(self, protocol: Any, data: bytes, address: Any) -> None:
        """Decode and answer ``data``; ``address`` is None over TCP."""

log = Logger()

#: The UDP payload every DNS client accepts (RFC 1035 §2.3.4).
MIN_UDP_PAYLOAD = 512
#: The largest UDP answer by default (and what our OPT record advertises):
#: the DNS Flag Day 2020 size, which avoids IP fragmentation, and keeps the
#: answers a forged source address can draw small (``--max-udp-size``).
DEFAULT_MAX_UDP = 1232
#: The most ``--max-udp-size`` may be.
MAX_UDP_PAYLOAD = 4096
#: The smallest query: a header and a question for the root.
MIN_QUERY = 17
#: A DNS message over TCP has a 16-bit length prefix (RFC 1035 §4.2.2).
MAX_TCP_MESSAGE = 65535
#: Seconds an idle TCP connection is kept (RFC 7766 §6.2.3 suggests seconds).
TCP_IDLE_TIMEOUT = 10


def encode_reply(message: dns.Message, limit: int) -> bytes:
    """``message`` on the wire, or, if that exceeds ``limit`` bytes, its
    header and question alone with TC set (never a record cut in half, as
    `dns.Message.encode` would do). A question that cannot be written back
    (a name over 255 octets once its labels' dots are read as separators)
    makes a FORMERR of the header alone."""
    try:
        data = _to_bytes(message)
    except ValueError:
        return _to_bytes(
            dns.Message(id=message.id, answer=1, opCode=message.opCode, rCode=dns.EFORMAT)
        )
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


def udp_limit(request: dns.Message, cap: int = DEFAULT_MAX_UDP) -> int:
    """How big a UDP answer to ``request`` may be: 512 bytes, or the EDNS0
    payload size it advertises (RFC 6891 §6.2.3, §6.2.5), capped."""
    for record in request.additional:
        if record.type == dns.OPT:
            return max(MIN_UDP_PAYLOAD, min(record.cls, cap))
    return MIN_UDP_PAYLOAD


class DatagramProtocol(dns.DNSDatagramProtocol):
    """DNS over UDP, answering within the request's size limit."""

    controller: PacketHandler
    noisy = False  # no "Starting protocol <...>" line

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "DNS UDP"

    def __init__(self, controller: PacketHandler, reactor: Any = None) -> None:
        super().__init__(controller, reactor)
        self._send: Callable[[bytes, Any], Any] = self._write
        self.countdown = LATENCY_SAMPLE

    def startProtocol(self) -> None:
        super().startProtocol()
        # Straight to the socket: the port's write() re-validates the address
        # on every datagram, which costs as much as answering from the cache.
        sock = getattr(self.transport, "socket", None)
        self._send = sock.sendto if sock is not None else self._write

    def _write(self, data: bytes, address: Any) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.write(data, address)

    def send_wire(self, data: bytes, address: Any, query_size: int = 0) -> None:
        """Send an encoded answer to a query of ``query_size`` bytes (0:
        unknown), or its TC form when the large-answer budget says so; a
        full socket buffer drops it, as the network may."""
        large = self.controller.large_limiter
        if large is not None and len(data) > FACTOR * (query_size or MIN_QUERY):
            data = large.check(data, query_size, address[0])
            if not data:
                return
        try:
            self._send(data, address)
        except OSError:
            pass

    def writeMessage(self, message: dns.Message, address: Any) -> None:
        if self.transport is None:  # stopped while the answer was pending
            return
        self.send_wire(encode_reply(message, message.maxSize or MIN_UDP_PAYLOAD), address)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        factory = self.controller
        limiter = factory.rate_limiter
        if limiter is not None:
            instead = limiter.limit(data, addr[0])
            if instead is not None:
                if instead:
                    self.send_wire(instead, addr)
                return
        cache = factory.answer_cache
        if cache is not None:
            countdown = self.countdown - 1
            if not countdown:
                self.timed(data, addr)
                return
            self.countdown = countdown
            reply = cache.answer(data)
            if reply is not None:
                self.send_wire(reply, addr, len(data))
                return
        self.missed(data, addr)

    def timed(self, data: bytes, addr: Any) -> None:
        """Answer ``data`` timing a cache hit (one in `LATENCY_SAMPLE`)."""
        self.countdown = LATENCY_SAMPLE
        factory = self.controller
        started = factory.timer()
        reply = factory.answer_cache.answer(data) if factory.answer_cache is not None else None
        if reply is None:
            self.missed(data, addr)
            return
        self.send_wire(reply, addr, len(data))
        factory.stats.latency("cache", factory.timer() - started)
        factory.stats.sizes("udp", len(data), len(reply))

    def missed(self, data: bytes, addr: Any) -> None:
        """Answer ``data``, which the cache did not."""
        try:
            self.controller.packet_received(self, data, addr)
        except Exception:
            log.failure("dropped a DNS packet from {addr}", addr=addr)


class StreamProtocol(dns.DNSProtocol, TimeoutMixin):
    """DNS over TCP.  The factory's timeout is a deadline for each whole
    message: the timer restarts when a message is complete, not on every
    byte, so a client that drips bytes cannot hold a connection slot
    longer than it (RFC 7766 §6.2.3)."""

    factory: PacketHandler
    #: The client's address (its host), for the factory's per-client count.
    client: Any = None

    #: Fires when the connection is gone (`DNSService.stopService` waits).
    lost: defer.Deferred[None]

    def connectionMade(self) -> None:
        self.lost = defer.Deferred()
        super().connectionMade()
        self.setTimeout(self.factory.idle_timeout)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        super().connectionLost(reason)
        self.lost.callback(None)

    def stringReceived(self, data: bytes) -> None:
        self.resetTimeout()
        factory = self.factory
        cache = factory.answer_cache
        if cache is not None:
            reply = cache.answer(data, True)
            if reply is not None:
                self.send_wire(reply, None)
                return
        try:
            factory.packet_received(self, data, None)
        except Exception:
            transport: Any = self.transport
            log.failure("dropped a DNS message from {peer}", peer=transport.getPeer())

    def send_wire(self, data: bytes, address: Any = None, query_size: int = 0) -> None:
        if self.transport is None or not self.connected:
            return
        self.sendString(data)

    def writeMessage(self, message: dns.Message) -> None:
        self.send_wire(encode_reply(message, MAX_TCP_MESSAGE))


class FastUDPPort(udp.Port):
    """A UDP port whose read loop answers `AnswerCache` hits itself; other
    datagrams go to the protocol's ``datagramReceived`` as usual."""

    protocol: DatagramProtocol

    def doRead(self) -> None:
        protocol = self.protocol
        factory = protocol.controller
        cache = factory.answer_cache
        if cache is None:
            return super().doRead()  # type: ignore[no-any-return]
        sock = self.socket
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        answer = cache.answer
        size = self.maxPacketSize
        ipv6 = self.addressFamily == socket.AF_INET6
        limiter = factory.rate_limiter
        large = factory.large_limiter
        # Bounded like Twisted's loop (maxThroughput), so TCP is served too.
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, addr = recvfrom(size)
            except OSError as e:
                if e.args[0] in udp._sockErrReadIgnore or e.args[0] in udp._sockErrReadRefuse:
                    return None
                raise
            if limiter is not None:
                instead = limiter.limit(data, addr[0])
                if instead is not None:
                    if instead:
                        try:
                            sendto(instead, addr)
                        except OSError:
                            pass
                    continue
            countdown = protocol.countdown - 1
            if countdown:
                protocol.countdown = countdown
                reply = answer(data)
                if reply is not None:
                    if large is not None and len(reply) > FACTOR * len(data):
                        reply = large.check(reply, len(data), addr[0])
                    if reply:
                        try:
                            sendto(reply, addr)  # the full address (an IPv6 scope too)
                        except OSError:
                            pass  # a full socket buffer drops it, as the network may
                    continue
            if ipv6:
                addr = addr[:2]  # as Twisted's own port hands it over
            if countdown:
                protocol.missed(data, addr)
            else:
                protocol.timed(data, addr)
        return None


#: Datagrams read per reactor wake-up at most.
_READS_PER_WAKEUP = 256


def listen_udp(
    reactor: Any, port: int, protocol: DatagramProtocol, interface: str, max_packet_size: int
) -> Any:
    """``reactor.listenUDP`` with a `FastUDPPort` where the reactor is a
    POSIX one that would make a `udp.Port` anyway."""
    from twisted.internet.posixbase import PosixReactorBase

    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=max_packet_size)
    listening = FastUDPPort(port, protocol, interface, max_packet_size, reactor)
    listening.startListening()
    return listening
