"""Tests for skydns.dns.server: the DNS packet path (SPEC.md §3).

The factory tests feed wire bytes to the UDP and TCP protocols with fake
transports and a `task.Clock`; `RealSocketTests` starts a `DNSService` on a
loopback port and asks it with dnspython over real UDP and TCP.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Optional

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.names import dns as tdns
from twisted.names.common import ResolverBase
from twisted.trial import unittest

from skydns.commands import Register
from skydns.dns.authority import SkyDNSAuthority, make_resolver
from skydns.dns.protocols import DEFAULT_MAX_UDP
from skydns.dns.server import (
    TCP_IDLE_TIMEOUT,
    SkyDNSServerFactory,
    encode_reply,
    rcode_for,
)
from skydns.dns.service import DNSService
from skydns.names import Service
from skydns.registry import Registry
from skydns.slots import ConnectionSlots

CLIENT = ("127.0.0.1", 53535)
DOMAIN = "skydns.local"


def make_registry(clock: Clock, count: int = 2, host: str = "10.0.0.{n}") -> Registry:
    """A registry with ``count`` rails/production instances."""
    registry = Registry()
    for n in range(1, count + 1):
        service = Service(
            uuid=f"uuid{n:03d}",
            name="rails",
            environment="production",
            region="east",
            version="1.0.1",
            host=host.format(n=n),
            port=8080,
            ttl=60,
        )
        registry.apply(Register(service, clock.seconds()))
    return registry


class FakeUDPTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, address: Any) -> None:
        self.sent.append((data, address))


class StaticForwarder(ResolverBase):
    """Answers every name with one non-authoritative A record."""

    def _lookup(self, name: bytes, cls: int, type: int, timeout: object = None) -> Any:
        payload: Any = tdns.Record_A("192.0.2.53", 30)
        return defer.succeed(([tdns.RRHeader(name, tdns.A, tdns.IN, 30, payload)], [], []))


class Exploding(ResolverBase):
    def _lookup(self, name: bytes, cls: int, type: int, timeout: object = None) -> Any:
        return defer.fail(RuntimeError("boom"))


def query(name: str, rdtype: str = "SRV", **kwargs: Any) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)


class FactoryTestCase(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = make_registry(self.clock)
        self.authority = SkyDNSAuthority(
            self.registry, self.clock, DOMAIN, [("node1", "127.0.0.1")]
        )
        self.factory = SkyDNSServerFactory(make_resolver(self.authority), self.clock)
        self.udp = self.factory.datagram_protocol()
        self.udp_transport = FakeUDPTransport()
        self.udp.makeConnection(self.udp_transport)  # type: ignore[arg-type]

    def udp_wire(self, data: bytes) -> list[bytes]:
        """Feed a datagram; the datagrams sent back."""
        del self.udp_transport.sent[:]
        self.udp.datagramReceived(data, CLIENT)
        for _, address in self.udp_transport.sent:
            self.assertEqual(address, CLIENT)
        return [data for data, _ in self.udp_transport.sent]

    def ask_udp(self, message: dns.message.Message) -> dns.message.Message:
        (reply,) = self.udp_wire(message.to_wire())
        response = dns.message.from_wire(reply)
        self.assertTrue(response.flags & dns.flags.QR)
        self.assertEqual(response.id, message.id)
        return response

    def tcp_connection(self) -> tuple[Any, StringTransport]:
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.addCleanup(lambda: None if protocol.lost.called else protocol.connectionLost(None))
        return protocol, transport

    def ask_tcp(self, message: dns.message.Message) -> dns.message.Message:
        protocol, transport = self.tcp_connection()
        wire = message.to_wire()
        protocol.dataReceived(struct.pack("!H", len(wire)) + wire)
        data = transport.value()
        (length,) = struct.unpack("!H", data[:2])
        self.assertEqual(len(data), 2 + length)
        return dns.message.from_wire(data[2:])


class AnswerTests(FactoryTestCase):
    def test_answer_is_authoritative(self) -> None:
        """An answer from the domain has AA, copies RD, and has no RA."""
        response = self.ask_udp(query("rails.production.skydns.local"))
        self.assertEqual(response.rcode(), dns.rcode.NOERROR)
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertTrue(response.flags & dns.flags.RD)
        self.assertFalse(response.flags & dns.flags.RA)
        self.assertEqual(len(response.answer[0]), 2)
        self.assertEqual(len(response.additional), 2)  # one A RRset per target

    def test_nxdomain(self) -> None:
        """A name matching nothing: NXDOMAIN, AA, the SOA in authority."""
        response = self.ask_udp(query("django.production.skydns.local"))
        self.assertEqual(response.rcode(), dns.rcode.NXDOMAIN)
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertEqual(response.answer, [])
        (soa,) = response.authority
        self.assertEqual(soa.rdtype, dns.rdatatype.SOA)
        self.assertEqual(soa[0].serial, self.registry.version)

    def test_nodata(self) -> None:
        """An existing name without the type: NOERROR, empty, SOA, AA."""
        response = self.ask_udp(query("rails.production.skydns.local", "TXT"))
        self.assertEqual(response.rcode(), dns.rcode.NOERROR)
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertEqual(response.answer, [])
        self.assertEqual([r.rdtype for r in response.authority], [dns.rdatatype.SOA])

    def test_outside_domain_refused(self) -> None:
        """Without a forwarder, names outside the domain are REFUSED."""
        response = self.ask_udp(query("example.com", "A"))
        self.assertEqual(response.rcode(), dns.rcode.REFUSED)
        self.assertFalse(response.flags & dns.flags.AA)
        self.assertEqual(response.answer, [])

    def test_forwarder_seam(self) -> None:
        """With a forwarder the chain answers outside names, without AA."""
        resolver = make_resolver(self.authority, StaticForwarder())
        self.factory = SkyDNSServerFactory(resolver, self.clock, can_recurse=True)
        self.udp = self.factory.datagram_protocol()
        self.udp.makeConnection(self.udp_transport)  # type: ignore[arg-type]
        response = self.ask_udp(query("example.com", "A"))
        self.assertEqual(response.rcode(), dns.rcode.NOERROR)
        self.assertFalse(response.flags & dns.flags.AA)
        self.assertTrue(response.flags & dns.flags.RA)
        self.assertEqual(response.answer[0][0].address, "192.0.2.53")
        response = self.ask_udp(query("nope.skydns.local", "A"))
        self.assertEqual(response.rcode(), dns.rcode.NXDOMAIN)

    def test_zone_transfer_refused(self) -> None:
        """AXFR is refused."""
        response = self.ask_tcp(query("skydns.local", "AXFR"))
        self.assertEqual(response.rcode(), dns.rcode.REFUSED)

    def test_unexpected_error_is_servfail(self) -> None:
        """A resolver bug gives SERVFAIL (and is logged), not silence."""
        self.factory = SkyDNSServerFactory(Exploding(), self.clock)
        self.udp = self.factory.datagram_protocol()
        self.udp.makeConnection(self.udp_transport)  # type: ignore[arg-type]
        response = self.ask_udp(query("rails.production.skydns.local"))
        self.assertEqual(response.rcode(), dns.rcode.SERVFAIL)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_rcode_mapping(self) -> None:
        """Chain errors map to their rcodes; a bare DomainError is REFUSED."""
        from twisted.names import error

        self.assertEqual(rcode_for(error.DomainError("x")), tdns.EREFUSED)
        self.assertEqual(rcode_for(error.DNSNameError()), tdns.ENAME)
        self.assertEqual(rcode_for(error.DNSServerError()), tdns.ESERVER)
        self.assertEqual(rcode_for(error.DNSQueryTimeoutError(1)), tdns.ESERVER)
        self.assertIsNone(rcode_for(RuntimeError()))

    def test_tcp_answer(self) -> None:
        """TCP answers like UDP, length-prefixed."""
        response = self.ask_tcp(query("uuid001.skydns.local", "A"))
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertEqual(response.answer[0][0].address, "10.0.0.1")


class TruncationTests(FactoryTestCase):
    def setUp(self) -> None:
        super().setUp()
        # 30 host-name instances: an SRV answer far over 512 bytes.
        self.registry = make_registry(self.clock, 30, "host-{n}.rack-a.example.com")
        self.authority.registry = self.registry
        self.name = "rails.production.skydns.local"

    def test_udp_without_edns_truncates(self) -> None:
        """Over 512 bytes without EDNS0: TC set, question only."""
        (reply,) = self.udp_wire(query(self.name).to_wire())
        self.assertLessEqual(len(reply), 512)
        response = dns.message.from_wire(reply)
        self.assertTrue(response.flags & dns.flags.TC)
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertEqual(response.answer, [])
        self.assertEqual(str(response.question[0].name), self.name + ".")

    def test_edns_payload_honoured(self) -> None:
        """A UDP answer is at most the client's EDNS0 payload size and the
        server's ``max_udp_size`` (1232 by default, issue 17: no more than
        that to a forged source address); beyond, TC.  Our OPT record
        advertises the server's size."""
        for payload in (4096, 600):
            (reply,) = self.udp_wire(query(self.name, use_edns=0, payload=payload).to_wire())
            self.assertLessEqual(len(reply), min(payload, DEFAULT_MAX_UDP))
            response = dns.message.from_wire(reply)
            self.assertTrue(response.flags & dns.flags.TC)
            self.assertEqual((response.edns, response.payload), (0, DEFAULT_MAX_UDP))
        self.factory = SkyDNSServerFactory(make_resolver(self.authority), self.clock,
                                           max_udp_size=4096)  # fmt: skip
        self.udp = self.factory.datagram_protocol()
        self.udp.makeConnection(self.udp_transport)  # type: ignore[arg-type]
        response = self.ask_udp(query(self.name, use_edns=0, payload=4096))
        self.assertFalse(response.flags & dns.flags.TC)
        self.assertEqual(len(response.answer[0]), 30)
        self.assertEqual(response.payload, 4096)

    def test_tcp_has_everything(self) -> None:
        """The same question over TCP gets every record."""
        response = self.ask_tcp(query(self.name))
        self.assertFalse(response.flags & dns.flags.TC)
        self.assertEqual(len(response.answer[0]), 30)

    def test_encode_reply_small_message_untouched(self) -> None:
        """A message within the limit is encoded as is."""
        message = tdns.Message(id=7, answer=1)
        message.queries = [tdns.Query(b"a.skydns.local", tdns.A)]
        self.assertEqual(encode_reply(message, 512), message.toStr())


class MalformedTests(FactoryTestCase):
    def test_garbage_dropped(self) -> None:
        """Undecodable datagrams get no reply and break nothing."""
        for data in (b"", b"\x00", b"\x12\x34\x01", b"\xff" * 11, b"\x00" * 12 + b"\xff" * 40):
            self.udp_wire(data)
        self.assertEqual(self.ask_udp(query("skydns.local", "SOA")).rcode(), dns.rcode.NOERROR)

    def test_no_question_formerr(self) -> None:
        """A query with no question, or two, gets FORMERR."""
        message = query("skydns.local", "SOA")
        wire = bytearray(message.to_wire())
        header = bytes(wire[:4]) + b"\x00\x00" + bytes(wire[6:12])
        (reply,) = self.udp_wire(header)
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.FORMERR)
        wire[4:6] = b"\x00\x02"
        wire += wire[12:]
        (reply,) = self.udp_wire(bytes(wire))
        self.assertEqual(
            dns.message.from_wire(reply, question_only=True).rcode(), dns.rcode.FORMERR
        )

    def test_unencodable_name_formerr(self) -> None:
        """A question whose name cannot be written back (a label starting with
        a dot makes a 319-octet name one label) gets a header-only FORMERR,
        for a query and for an opcode we do not implement."""
        labels = [b"." + b"a" * 62] + [b"b" * 63] * 4
        name = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
        for flags in (0x0100, 0x2100):
            data = struct.pack("!6H", 0x4242, flags, 1, 0, 0, 0) + name + b"\0\x01\0\x01"
            (reply,) = self.udp_wire(data)
            response = dns.message.from_wire(reply)
            self.assertEqual((response.id, response.rcode()), (0x4242, dns.rcode.FORMERR))
            self.assertEqual(response.question, [])
        self.assertEqual(self.ask_udp(query("skydns.local", "SOA")).rcode(), dns.rcode.NOERROR)

    def test_response_ignored(self) -> None:
        """A packet with QR set is never answered (no reflection loops)."""
        wire = bytearray(query("skydns.local", "SOA").to_wire())
        wire[2] |= 0x80
        self.assertEqual(self.udp_wire(bytes(wire)), [])

    def test_other_opcode_notimp(self) -> None:
        """NOTIFY and other opcodes: NOTIMP."""
        message = query("skydns.local", "SOA")
        message.set_opcode(dns.opcode.NOTIFY)
        (reply,) = self.udp_wire(message.to_wire())
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.NOTIMP)

    def test_notimp_copies_the_opcode(self) -> None:
        """NOTIMP carries the request's opcode, ID, RD and question (RFC 1035
        §4.1.1), for every opcode but QUERY (UPDATE included)."""
        request = query("rails.production.skydns.local", "SRV").to_wire()
        for opcode in (1, 2, 3, 4, 5, 6, 15):
            data = request[:2] + bytes([request[2] & 0x87 | opcode << 3]) + request[3:]
            (reply,) = self.udp_wire(data)
            self.assertEqual(reply[:2], data[:2])  # ID
            self.assertEqual(reply[2], 0x80 | opcode << 3 | 0x01)  # QR, opcode, RD
            self.assertEqual(reply[3] & 0x0F, dns.rcode.NOTIMP)
            self.assertEqual(reply[4:12], b"\x00\x01\x00\x00\x00\x00\x00\x00")
            self.assertEqual(reply[12:], data[12:])  # the question

    def test_edns_version_above_0_badvers(self) -> None:
        """An EDNS version we do not speak gets BADVERS: rcode 16, its upper
        bits in an OPT record of version 0 (RFC 6891 §6.1.3), no records;
        over TCP too, and it is counted as BADVERS."""
        for version in (1, 2, 255):
            message = query("rails.production.skydns.local", "SRV", use_edns=version)
            for response in (self.ask_udp(message), self.ask_tcp(message)):
                self.assertEqual(response.rcode(), dns.rcode.BADVERS)
                self.assertEqual(response.edns, 0)
                self.assertEqual(response.payload, DEFAULT_MAX_UDP)
                self.assertEqual(response.answer, [])
                self.assertEqual(response.question, message.question)
        self.assertEqual(self.factory.stats.totals().get(("udp", tdns.SRV, 16)), 3)
        # Version 0 is answered as usual.
        plain = self.ask_udp(query("rails.production.skydns.local", "SRV", use_edns=0))
        self.assertEqual((plain.rcode(), plain.edns, len(plain.answer)), (dns.rcode.NOERROR, 0, 1))

    def test_chaos_class_refused(self) -> None:
        """Classes other than IN are refused."""
        message = dns.message.make_query("version.bind", "TXT", "CH")
        self.assertEqual(self.ask_udp(message).rcode(), dns.rcode.REFUSED)

    def assert_response(self, reply: bytes) -> None:
        """``reply`` is a response whose header and question parse. An UPDATE
        (whose NOTIMP echoes a zone section of any type) is read as a QUERY,
        since dnspython insists an UPDATE's zone be of type SOA."""
        self.assertTrue(reply[2] & 0x80)
        if (reply[2] >> 3) & 0x0F == dns.opcode.UPDATE:
            reply = reply[:2] + bytes([reply[2] & 0x87]) + reply[3:]
        response = dns.message.from_wire(reply, question_only=True)
        self.assertTrue(response.flags & dns.flags.QR)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes(self, data: bytes) -> None:
        """Any datagram: no exception, and any reply is a well-formed response."""
        for reply in self.udp_wire(data):
            self.assert_response(reply)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4))
    def test_mutated_queries(self, mutations: list[tuple[int, int]]) -> None:
        """A valid query with bytes overwritten never breaks the server."""
        wire = bytearray(query("east.rails.production.skydns.local", use_edns=0).to_wire())
        for index, value in mutations:
            if index < len(wire):
                wire[index] = value
        for reply in self.udp_wire(bytes(wire)):
            self.assert_response(reply)

    def test_tcp_garbage_then_query(self) -> None:
        """Garbage on a TCP connection is skipped; the next query is answered."""
        protocol, transport = self.tcp_connection()
        wire = query("skydns.local", "SOA").to_wire()
        protocol.dataReceived(b"\x00\x03abc" + struct.pack("!H", len(wire)) + wire)
        data = transport.value()
        response = dns.message.from_wire(data[2:])
        self.assertEqual(response.rcode(), dns.rcode.NOERROR)

    def test_tcp_idle_timeout(self) -> None:
        """An idle TCP connection is closed; traffic keeps it open."""
        protocol, transport = self.tcp_connection()
        self.clock.advance(TCP_IDLE_TIMEOUT - 1)
        wire = query("skydns.local", "SOA").to_wire()
        protocol.dataReceived(struct.pack("!H", len(wire)) + wire)
        self.clock.advance(TCP_IDLE_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_dripping_client_gets_no_more_than_the_deadline(self) -> None:
        """The timeout is a deadline for each whole message: a client that
        sends one byte every few seconds and never completes a message is
        closed when it runs out, whatever it keeps sending (issue 17)."""
        protocol, transport = self.tcp_connection()
        wire = query("skydns.local", "SOA").to_wire()
        message = struct.pack("!H", len(wire)) + wire
        for byte in message[: TCP_IDLE_TIMEOUT - 1]:
            self.clock.advance(1)
            protocol.dataReceived(bytes([byte]))
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class RealSocketTests(unittest.TestCase):
    """A `DNSService` on loopback, asked by dnspython over real sockets."""

    timeout = 20

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = make_registry(self.clock, 30, "host-{n}.rack-a.example.com")
        self.registry.apply(
            Register(
                Service("ip1", "web", "production", "east", "1", "10.1.2.3", 80, 60),
                self.clock.seconds(),
            )
        )
        self.authority = SkyDNSAuthority(self.registry, self.clock, DOMAIN, [("n1", "127.0.0.1")])

    def start(self, interface: str = "127.0.0.1") -> DNSService:
        service = DNSService(make_resolver(self.authority), interface, 0, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        assert service.port is not None
        self.assertNotEqual(service.port, 0)
        self.assertEqual(service.udp_listener.getHost().port, service.port)
        self.assertEqual(service.tcp_listener.getHost().port, service.port)
        return service

    def udp(self, message: Any, host: str, port: Optional[int]) -> defer.Deferred[Any]:
        assert port is not None
        return deferToThread(dns.query.udp, message, host, port=port, timeout=5)

    def tcp(self, message: Any, host: str, port: Optional[int]) -> defer.Deferred[Any]:
        assert port is not None
        return deferToThread(dns.query.tcp, message, host, port=port, timeout=5)

    @defer.inlineCallbacks
    def test_udp_and_tcp(self) -> Any:
        """The same port answers over UDP and TCP."""
        service = self.start()
        response = yield self.udp(
            query("web.production.skydns.local", "A"), "127.0.0.1", service.port
        )
        self.assertTrue(response.flags & dns.flags.AA)
        self.assertEqual(response.answer[0][0].address, "10.1.2.3")
        response = yield self.tcp(query("ip1.skydns.local", "A"), "127.0.0.1", service.port)
        self.assertEqual(response.answer[0][0].address, "10.1.2.3")

    @defer.inlineCallbacks
    def test_truncated_udp_then_tcp(self) -> Any:
        """A big answer is truncated over UDP and whole over TCP."""
        service = self.start()
        name = "rails.production.skydns.local"
        response = yield self.udp(query(name), "127.0.0.1", service.port)
        self.assertTrue(response.flags & dns.flags.TC)
        response = yield self.tcp(query(name), "127.0.0.1", service.port)
        self.assertEqual(len(response.answer[0]), 30)

    @defer.inlineCallbacks
    def test_refused_and_nxdomain(self) -> Any:
        """Outside names are REFUSED; unknown names in the domain NXDOMAIN."""
        service = self.start()
        response = yield self.udp(query("example.com", "A"), "127.0.0.1", service.port)
        self.assertEqual(response.rcode(), dns.rcode.REFUSED)
        response = yield self.udp(query("x.skydns.local", "A"), "127.0.0.1", service.port)
        self.assertEqual(response.rcode(), dns.rcode.NXDOMAIN)

    @defer.inlineCallbacks
    def test_survives_garbage(self) -> Any:
        """Garbage datagrams do not stop the server."""
        service = self.start()

        def send_garbage() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for data in (b"\x00", b"\xff" * 40, b"\x00" * 12 + b"\x01"):
                    sock.sendto(data, ("127.0.0.1", service.port or 0))

        yield deferToThread(send_garbage)
        response = yield self.udp(query(DOMAIN, "SOA"), "127.0.0.1", service.port)
        self.assertEqual(response.rcode(), dns.rcode.NOERROR)

    @defer.inlineCallbacks
    def test_ipv6(self) -> Any:
        """An IPv6 literal interface works for UDP and TCP."""
        if not _ipv6_loopback():
            raise unittest.SkipTest("no IPv6 loopback")
        service = self.start("::1")
        response = yield self.udp(query("ip1.skydns.local", "A"), "::1", service.port)
        self.assertEqual(response.answer[0][0].address, "10.1.2.3")
        response = yield self.tcp(query("ip1.skydns.local", "A"), "::1", service.port)
        self.assertEqual(response.answer[0][0].address, "10.1.2.3")

    @defer.inlineCallbacks
    def test_stop_closes_everything(self) -> Any:
        """stopService closes both sockets and open TCP connections."""
        service = DNSService(make_resolver(self.authority), "127.0.0.1", 0, reactor=reactor)
        service.startService()
        port = service.port
        assert port is not None

        def connect() -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=5)

        client = yield deferToThread(connect)
        self.addCleanup(client.close)
        # Wait until the server has accepted the connection.
        for _ in range(100):
            if service.factory.connections:
                break
            yield deferToThread(lambda: None)
        yield service.stopService()
        self.assertEqual(service.factory.connections, [])
        with self.assertRaises(ConnectionRefusedError):
            yield deferToThread(connect)


class TCPConnectionLimitTests(FactoryTestCase):
    """A client cannot hold more DNS TCP connections open than the limit."""

    def test_connections_past_the_limit_are_refused_until_one_closes(self) -> None:
        self.factory.slots = ConnectionSlots(self.clock, "DNS TCP", 2, 2)
        first, _ = self.tcp_connection()
        self.tcp_connection()
        self.assertIsNone(self.factory.buildProtocol(None))
        first.connectionLost(None)
        self.assertIsNotNone(self.factory.buildProtocol(None))

    def test_one_client_holds_half_the_slots_at_most(self) -> None:
        """By default a client address holds at most half of the slots, so
        one client cannot take them all from the others."""
        factory = SkyDNSServerFactory(make_resolver(self.authority), self.clock,
                                      max_tcp_connections=4)  # fmt: skip
        greedy = IPv4Address("TCP", "192.0.2.7", 5353)
        held = []
        for _ in range(2):
            protocol = factory.buildProtocol(greedy)
            protocol.makeConnection(StringTransport())
            held.append(protocol)
        self.assertIsNone(factory.buildProtocol(greedy))
        other = factory.buildProtocol(IPv4Address("TCP", "192.0.2.8", 5353))
        self.assertIsNotNone(other)
        held[0].connectionLost(None)
        self.assertIsNotNone(factory.buildProtocol(greedy))
