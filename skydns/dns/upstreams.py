"""The upstream nameservers SkyDNS forwards to: who they are, and how to ask them.

Upstreams come from ``--nameserver IP:PORT,...`` or, by default, from the
``nameserver`` lines of /etc/resolv.conf.  When SkyDNS is itself the host's
nameserver, resolv.conf names SkyDNS's own address: forwarding there would
send every unknown name round in a circle, so `without_self` drops any
upstream that is the address SkyDNS's DNS listens on.  Loops this cannot see
(our LAN address, a second hop) are stopped at run time by the forwarder
(see `skydns.dns.forward`).

`NetworkClient` sends one question to one upstream over UDP or TCP and
returns the validated response; the forwarder decides what to do with it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any, Protocol

from attrs import frozen
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.logger import Logger
from twisted.names import dns
from twisted.protocols.basic import Int16StringReceiver
from zope.interface import Interface, implementer

DEFAULT_PORT = 53
RESOLV_CONF = "/etc/resolv.conf"

log = Logger()

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@frozen
class Upstream:
    """One upstream nameserver: an IP literal and a port."""

    host: str
    port: int = DEFAULT_PORT

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"


def _parse_ip(text: str, whole: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"nameserver {whole!r}: {text!r} is not an IP address") from None


def _parse_port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"nameserver {whole!r}: {text!r} is not a port number (1-65535)")
    return int(text)


def parse_upstream(text: str) -> Upstream:
    """``IPV4[:PORT]``, ``[IPV6][:PORT]`` or a bare IPv6 literal; the port defaults to 53.

    Raises ValueError naming the bad value.
    """
    item = text.strip()
    if not item:
        raise ValueError("empty nameserver address")
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise ValueError(f"nameserver {item!r}: missing ']' after the IPv6 address")
        host, rest = item[1:end], item[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"nameserver {item!r}: expected ':PORT' after ']'")
        port = _parse_port(rest[1:], item) if rest else DEFAULT_PORT
        host = _parse_ip(host, item)
        if ":" not in host:
            raise ValueError(f"nameserver {item!r}: brackets are for IPv6 addresses")
        return Upstream(host, port)
    if item.count(":") == 1:
        host, port_text = item.split(":")
        return Upstream(_parse_ip(host, item), _parse_port(port_text, item))
    return Upstream(_parse_ip(item, item), DEFAULT_PORT)


def parse_nameservers(text: str) -> list[Upstream]:
    """The comma-separated ``--nameserver`` value, in order, duplicates dropped."""
    upstreams: list[Upstream] = []
    for item in text.split(","):
        if item.strip():
            upstream = parse_upstream(item)
            if upstream not in upstreams:
                upstreams.append(upstream)
    if not upstreams:
        raise ValueError(f"--nameserver {text!r} lists no nameserver")
    return upstreams


def parse_resolv_conf(content: str) -> list[Upstream]:
    """The ``nameserver`` lines of a resolv.conf, in order, port 53.

    Like the C library, lines it cannot use are skipped (with a warning), not
    fatal: the file belongs to the system, not to SkyDNS.  A scope suffix
    (``fe80::1%eth0``) is kept: Twisted's IPv6 sockets accept it.
    """
    upstreams: list[Upstream] = []
    for number, line in enumerate(content.splitlines(), 1):
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            upstream = Upstream(str(ipaddress.ip_address(fields[1])), DEFAULT_PORT)
        except ValueError:
            log.warn(
                "resolv.conf line {number}: {value!r} is not an IP address; ignored",
                number=number,
                value=fields[1],
            )
            continue
        if upstream not in upstreams:
            upstreams.append(upstream)
    return upstreams


def read_resolv_conf(path: str = RESOLV_CONF) -> list[Upstream]:
    """`parse_resolv_conf` of the file at ``path``; no file means no upstreams.

    Read once at start-up (a small file), so a synchronous read is fine.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except FileNotFoundError:
        log.warn("{path} does not exist: no upstream nameservers", path=path)
        return []


def _canonical(address: _IPAddress) -> _IPAddress:
    """``0.0.0.0`` / ``::`` as a destination mean this host: read them as loopback;
    an IPv4-mapped IPv6 address is the IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return address


_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def is_self(
    upstream: Upstream,
    listen_host: str,
    listen_port: int,
    local_addresses: Iterable[str] = (),
) -> bool:
    """Whether ``upstream`` is SkyDNS's own DNS listener at ``listen_host:listen_port``.

    Same port, and: the same address (0.0.0.0 / :: read as loopback), or
    SkyDNS listens on the wildcard address and the upstream is 127.0.0.1, ::1,
    or one of ``local_addresses`` (this host's interface addresses, when the
    caller knows them).  Other loopback addresses such as systemd-resolved's
    127.0.0.53 are separate servers and are kept.
    """
    if upstream.port != listen_port:
        return False
    target = _canonical(ipaddress.ip_address(upstream.host.split("%", 1)[0]))
    listen = ipaddress.ip_address(listen_host.split("%", 1)[0])
    if listen.is_unspecified:
        local = {_canonical(ipaddress.ip_address(a)) for a in local_addresses}
        return target in _LOOPBACKS or target in local
    return target == _canonical(listen)


def without_self(
    upstreams: Iterable[Upstream],
    listen_host: str,
    listen_port: int,
    local_addresses: Iterable[str] = (),
) -> list[Upstream]:
    """``upstreams`` minus SkyDNS itself (see `is_self`), each drop logged."""
    local = list(local_addresses)
    kept: list[Upstream] = []
    for upstream in upstreams:
        if is_self(upstream, listen_host, listen_port, local):
            log.warn(
                "not forwarding to {upstream}: it is this SkyDNS server", upstream=str(upstream)
            )
        else:
            kept.append(upstream)
    return kept


def configured_upstreams(
    nameserver: str | None,
    listen_host: str,
    listen_port: int,
    resolv_conf: str = RESOLV_CONF,
    local_addresses: Iterable[str] = (),
) -> list[Upstream]:
    """The upstreams to forward to: ``--nameserver`` if given, else resolv.conf's,
    without SkyDNS itself.

    Raises ValueError when ``--nameserver`` is malformed or names only SkyDNS
    itself.  An empty result from resolv.conf is not an error: the forwarder
    then answers SERVFAIL for names outside the domain.
    """
    if nameserver is not None:
        listed = parse_nameservers(nameserver)
        kept = without_self(listed, listen_host, listen_port, local_addresses)
        if not kept:
            raise ValueError(
                f"--nameserver {nameserver!r} names only this SkyDNS server "
                f"({listen_host}:{listen_port}); forwarding there would loop"
            )
        return kept
    kept = without_self(read_resolv_conf(resolv_conf), listen_host, listen_port, local_addresses)
    if not kept:
        log.warn(
            "no upstream nameservers in {path}: names outside the domain get SERVFAIL",
            path=resolv_conf,
        )
    return kept


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

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._own: set[tuple[str, int]] = set()

    def is_own_address(self, host: str, port: int) -> bool:
        return (_normal_host(host), port) in self._own

    def query(self, upstream: Upstream, request: dns.Message, tcp: bool) -> Deferred[dns.Message]:
        if tcp:
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
        endpoint = endpoint_type(self._reactor, upstream.host, upstream.port)
        exchange = _TCPExchange(request)
        await endpoint.connect(_QuietFactory(exchange))
        transport: Any = exchange.transport
        own = self._remember(transport)
        try:
            return await exchange.reply
        finally:
            self._own.discard(own)
            transport.abortConnection()
