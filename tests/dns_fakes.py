"""Fake upstream nameservers for the forwarding tests.

`FakeUpstream` listens on 127.0.0.1, UDP and TCP on the same port, and answers
every query with a handler ``(query, tcp) -> response | None`` (None: stay
silent); `ThreadedUpstream` does the same on plain sockets and threads, for
blocking end-to-end tests.  `FakeClient` stands in for the network in
synchronous tests: each question is recorded with a Deferred the test fires
by hand.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.names import dns
from twisted.protocols.basic import Int16StringReceiver
from zope.interface import implementer

from skydns.dns.exchange import IUpstreamClient
from skydns.dns.upstreams import Upstream

Handler = Callable[[dns.Message, bool], "dns.Message | None"]


def response_to(query: dns.Message, rcode: int = dns.OK, **flags: Any) -> dns.Message:
    """An empty response to ``query``: same id and question, QR and RA set."""
    response = dns.Message(id=query.id, answer=1, recDes=query.recDes, recAv=1, rCode=rcode)
    response.maxSize = 0  # Twisted's default (512) would cut the encoding mid-record
    for name, value in flags.items():
        setattr(response, name, value)
    response.queries = list(query.queries)
    return response


def query(
    name: bytes = b"www.Example.ORG",
    type: int = dns.A,
    id: int = 4242,
    edns: dns._OPTHeader | None = None,
) -> dns.Message:
    """A client's query as a Twisted server hands it over."""
    message = dns.Message(id=id, recDes=1)
    message.queries = [dns.Query(name, type, dns.IN)]
    if edns is not None:
        message.additional = [edns]  # type: ignore[list-item]
    parsed = dns.Message()
    parsed.fromStr(message.toStr())
    return parsed


def opt_of(message: dns.Message) -> list[dns._OPTHeader]:
    """The OPT records of ``message`` as it would be read from the wire."""
    parsed = dns.Message()
    parsed.fromStr(message.toStr())
    return [dns._OPTHeader.fromRRHeader(r) for r in parsed.additional if r.type == dns.OPT]


def a_records(name: bytes, count: int, ttl: int = 300) -> list[dns.RRHeader]:
    """``count`` A records for ``name``: 192.0.2.1, 192.0.2.2, ..."""
    return [
        dns.RRHeader(name, dns.A, dns.IN, ttl, dns.Record_A(f"192.0.2.{i + 1}", ttl))  # type: ignore[arg-type]
        for i in range(count)
    ]


def soa(zone: bytes, ttl: int, minimum: int) -> dns.RRHeader:
    payload = dns.Record_SOA(
        mname=b"ns." + zone, rname=b"admin." + zone, serial=1, minimum=minimum, ttl=ttl
    )
    return dns.RRHeader(zone, dns.SOA, dns.IN, ttl, payload)  # type: ignore[arg-type]


def answering(count: int = 1, ttl: int = 300) -> Callable[[dns.Message, bool], dns.Message]:
    """Answers every question with ``count`` A records."""

    def handle(query: dns.Message, tcp: bool) -> dns.Message:
        response = response_to(query)
        response.answers = a_records(query.queries[0].name.name, count, ttl)
        return response

    return handle


def silent(query: dns.Message, tcp: bool) -> None:
    """Never answers."""
    return None


def failing(rcode: int = dns.ESERVER) -> Handler:
    """Answers every question with ``rcode`` and no records."""
    return lambda query, tcp: response_to(query, rcode)


def truncating(count: int = 40, ttl: int = 300) -> Handler:
    """Over UDP: TC and no records.  Over TCP: ``count`` A records."""

    def handle(query: dns.Message, tcp: bool) -> dns.Message:
        if not tcp:
            return response_to(query, trunc=1)
        return answering(count, ttl)(query, tcp)

    return handle


def nxdomain(zone: bytes = b"example.org", ttl: int = 3600, minimum: int = 60) -> Handler:
    """NXDOMAIN with the zone's SOA in the authority section."""

    def handle(query: dns.Message, tcp: bool) -> dns.Message:
        response = response_to(query, dns.ENAME)
        response.authority = [soa(zone, ttl, minimum)]
        return response

    return handle


#: A zone and a configuration for nsd, the real upstream of some tests
#: (format the configuration with ``port`` and ``dir``, an absolute path).
NSD_ZONE = """$ORIGIN example.test.
$TTL 300
@    IN SOA ns1 admin 1 3600 900 604800 60
@    IN NS  ns1
ns1  IN A   127.0.0.1
www  IN A   192.0.2.80
""" + "".join(f"big  IN A   192.0.2.{i}\n" for i in range(1, 41))

NSD_CONF = """server:
    ip-address: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    xfrdfile: "{dir}/xfrd.state"
    zonelistfile: "{dir}/zone.list"
    xfrdir: "{dir}"
    database: ""
    logfile: "{dir}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: example.test.zone
"""


class _UDP(protocol.DatagramProtocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        response = self.fake.handle(data, tcp=False)
        if response is not None:
            transport: Any = self.transport
            transport.write(response, addr)


class _TCP(Int16StringReceiver):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake

    def stringReceived(self, string: bytes) -> None:
        response = self.fake.handle(string, tcp=True)
        if response is not None:
            self.sendString(response)


class FakeUpstream:
    """A nameserver on 127.0.0.1 (UDP and TCP, one port) answering with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[tuple[dns.Message, bool]] = []
        self._ports: list[Any] = []
        self._connections: list[_TCP] = []

    @property
    def udp_count(self) -> int:
        return sum(1 for _, tcp in self.queries if not tcp)

    @property
    def tcp_count(self) -> int:
        return sum(1 for _, tcp in self.queries if tcp)

    def handle(self, data: bytes, tcp: bool) -> bytes | None:
        query = dns.Message()
        query.fromStr(data)
        self.queries.append((query, tcp))
        response = self.handler(query, tcp)
        return None if response is None else response.toStr()

    def start(self, reactor: Any) -> Upstream:
        """Listen on a free port (the same for UDP and TCP) and return its address."""
        fake = self

        class Factory(protocol.ServerFactory):
            def buildProtocol(self, addr: Any) -> _TCP:
                connection = _TCP(fake)
                fake._connections.append(connection)
                return connection

        for _ in range(20):
            udp = reactor.listenUDP(0, _UDP(self), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, Factory(), interface="127.0.0.1")
            except CannotListenError:
                udp.stopListening()
                continue
            self._ports = [udp, tcp]
            return Upstream("127.0.0.1", port)
        raise RuntimeError("no port free for both UDP and TCP")

    def stop(self) -> Deferred[Any]:
        for connection in self._connections:
            if connection.transport is not None:
                connection.transport.abortConnection()  # type: ignore[attr-defined]
        ports, self._ports = self._ports, []
        return gatherResults([maybeDeferred(p.stopListening) for p in ports])


@implementer(IUpstreamClient)
class FakeClient:
    """An `IUpstreamClient` whose answers the test gives by hand.

    ``calls`` holds ``(upstream, request, tcp, deferred)`` in order; a
    cancelled question is listed in ``cancelled``.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Upstream, dns.Message, bool, Deferred[dns.Message]]] = []
        self.cancelled: list[Upstream] = []
        self.own: set[tuple[str, int]] = set()

    def query(self, upstream: Upstream, request: dns.Message, tcp: bool) -> Deferred[dns.Message]:
        d: Deferred[dns.Message] = Deferred(lambda _: self.cancelled.append(upstream))
        self.calls.append((upstream, request, tcp, d))
        return d

    def is_own_address(self, host: str, port: int) -> bool:
        return (host, port) in self.own

    def reply(self, index: int, response: dns.Message) -> None:
        """Fire question ``index`` with ``response`` (its id set to the request's)."""
        _, request, _, d = self.calls[index]
        response.id = request.id
        d.callback(response)

    def answer(self, index: int, handler: Handler) -> None:
        """Fire question ``index`` with what ``handler`` says, as a FakeUpstream would."""
        _, request, tcp, _ = self.calls[index]
        response = handler(request, tcp)
        assert response is not None
        # Round-trip through the wire format, as the network client does.
        parsed = dns.Message()
        parsed.fromStr(response.toStr())
        self.reply(index, parsed)


class ThreadedUpstream:
    """A `FakeUpstream` on plain sockets served by threads, for tests that
    block (end-to-end tests talking to a real `twistd skydns` process).

    UDP and TCP on one free port of ``host``; each TCP connection answers
    length-prefixed queries until the client closes it.  ``queries`` is
    appended from the server threads (list.append is atomic).
    """

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.port = 0
        self.queries: list[tuple[dns.Message, bool]] = []
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def udp_count(self) -> int:
        return sum(1 for _, tcp in self.queries if not tcp)

    @property
    def tcp_count(self) -> int:
        return sum(1 for _, tcp in self.queries if tcp)

    def _answer(self, data: bytes, tcp: bool) -> bytes | None:
        query = dns.Message()
        try:
            query.fromStr(data)
        except Exception:
            return None
        self.queries.append((query, tcp))
        response = self.handler(query, tcp)
        return None if response is None else response.toStr()

    def start(self) -> Upstream:
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self.requested_port))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.requested_port:
                    raise
                continue
            tcp.listen(16)
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        udp.settimeout(0.1)
        tcp.settimeout(0.1)
        self.port = port
        self._sockets = [udp, tcp]
        for target, sock in ((self._serve_udp, udp), (self._serve_tcp, tcp)):
            thread = threading.Thread(target=target, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return Upstream(self.host, port)

    def _serve_udp(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            response = self._answer(data, tcp=False)
            if response is not None:
                try:
                    sock.sendto(response, peer)
                except OSError:
                    pass

    def _serve_tcp(self, sock: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._connection, args=(connection,), daemon=True)
            thread.start()

    def _connection(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        buffer = b""
        with connection:
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(65535)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 2 and len(buffer) >= 2 + (buffer[0] << 8 | buffer[1]):
                    size = buffer[0] << 8 | buffer[1]
                    data, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                    response = self._answer(data, tcp=True)
                    if response is not None:
                        connection.sendall(len(response).to_bytes(2, "big") + response)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(2)
        for sock in self._sockets:
            sock.close()
