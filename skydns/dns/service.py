"""The DNS service: the server factory listening on UDP and TCP at one
address and port (and, when asked, DNS over TLS at another, RFC 7858: the
same factory, so the same answers, limits and idle timeout as TCP), stopped
with every connection closed."""

from __future__ import annotations

from typing import Any, Optional

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from skydns.dns.amplification import AmplificationLimiter
from skydns.dns.answercache import AnswerCache
from skydns.dns.forward import Forwarder
from skydns.dns.protocols import DEFAULT_MAX_UDP, MAX_TCP_MESSAGE, TCP_IDLE_TIMEOUT, listen_udp
from skydns.dns.reuseport import listen_shared
from skydns.dns.rrl import ResponseRateLimiter
from skydns.dns.server import MAX_TCP_CONNECTIONS, SkyDNSServerFactory

log = Logger()


class DNSService(MultiService):
    """Answers DNS with ``resolver`` on UDP and TCP at ``interface``:``port``.

    ``interface`` is an IPv4 or IPv6 literal.  With ``port`` 0 both sockets
    get the same free port; `port` holds the bound number once started.
    With a ``rate_limiter``, UDP answers are limited per client network
    (`skydns.dns.rrl`); with a ``large_limiter``, UDP answers over three
    times their query's size are (`skydns.dns.amplification`);
    ``answer_cache`` is the fast path's cache (see `answer_cache_for`,
    which makes one when none is given); without ``fast_path``, every
    query takes the twisted.names path; with ``reuse_port`` other processes
    may serve the same address (`skydns.dns.reuseport`).
    """

    def __init__(
        self,
        resolver: Any,
        interface: str = "127.0.0.1",
        port: int = 8053,
        *,
        reactor: Any,
        can_recurse: bool = False,
        idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
        forwarder: Optional[Forwarder] = None,
        fast_path: bool = True,
        answer_cache: Optional[AnswerCache] = None,
        metrics: Any = None,
        max_tcp_connections: int = MAX_TCP_CONNECTIONS,
        rate_limiter: Optional[ResponseRateLimiter] = None,
        max_udp_size: int = DEFAULT_MAX_UDP,
        large_limiter: Optional[AmplificationLimiter] = None,
        tls: tuple[Any, Any] = (None, None),
        reuse_port: bool = False,
    ) -> None:
        super().__init__()
        #: Whether other processes may bind the same address (``--dns-workers``).
        self.reuse_port = reuse_port
        #: (HOST:PORT, TLS settings) to serve DNS over TLS on, or Nones.
        self.tls = tls
        self.tls_listener: Any = None
        self.resolver = resolver
        self.interface = interface
        self.requested_port = port
        self._reactor = reactor
        self.forwarder = forwarder
        self.factory = SkyDNSServerFactory(
            resolver,
            reactor,
            can_recurse,
            idle_timeout,
            forwarder=forwarder,
            fast_path=fast_path,
            metrics=metrics,
            answer_cache=answer_cache,
            max_udp_size=max_udp_size,
            max_tcp_connections=max_tcp_connections,
            rate_limiter=rate_limiter,
            large_limiter=large_limiter,
        )
        self.port: Optional[int] = None
        self.udp_listener: Any = None
        self.tcp_listener: Any = None

    def startService(self) -> None:
        reactor = self._reactor
        # With port 0 the TCP socket may find the UDP port taken: try anew.
        attempts = 20 if self.requested_port == 0 else 1
        for attempt in range(attempts):
            if self.reuse_port:
                try:
                    self.udp_listener, self.tcp_listener = listen_shared(
                        reactor, self.requested_port, self.factory,
                        self.factory.datagram_protocol(), self.interface, MAX_TCP_MESSAGE,
                    )  # fmt: skip
                except CannotListenError:
                    if attempt == attempts - 1:
                        raise
                    continue
                self.port = self.udp_listener.getHost().port
                break
            udp = listen_udp(
                reactor,
                self.requested_port,
                self.factory.datagram_protocol(),
                self.interface,
                MAX_TCP_MESSAGE,
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
        address, context = self.tls
        if address is not None:
            self.tls_listener = reactor.listenSSL(
                address.port, self.factory, context, interface=address.host
            )
            log.info("DNS over TLS listening on {address}", address=str(address))
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
        for listener in (self.udp_listener, self.tcp_listener, self.tls_listener):
            if listener is not None:
                stopping.append(defer.maybeDeferred(listener.stopListening))
        self.udp_listener = self.tcp_listener = self.tls_listener = None
        for connection in list(self.factory.connections):
            stopping.append(connection.lost)
            connection.transport.loseConnection()
        return defer.gatherResults(stopping, consumeErrors=True)
