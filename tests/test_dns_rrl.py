"""Tests for response rate limiting: `skydns.dns.rrl` and its use by the UDP
paths of `skydns.dns.server` (the cache-hit read loop, the direct path and
the twisted.names path), the ``--rrl-*`` options and the metric."""

from __future__ import annotations

import errno
import struct
from typing import Any

import dns.flags
import dns.message
import dns.rcode
from hypothesis import example, given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from skydns.commands import Register
from skydns.dns.authority import SkyDNSAuthority, make_resolver
from skydns.dns.protocols import FastUDPPort
from skydns.dns.rrl import (
    DEFAULT_SLIP,
    DROP,
    MAX_PREFIXES,
    ResponseRateLimiter,
    prefix_of,
    truncated_reply,
)
from skydns.dns.server import SkyDNSServerFactory
from skydns.metrics import Metrics
from skydns.names import Service
from skydns.registry import Registry
from skydns.tap import Options
from tests.test_dns_server import CLIENT, FakeUDPTransport, StaticForwarder

DOMAIN = "skydns.local"
NAME = "rails.production.skydns.local"


#: A query whose name is 256 octets long (one too many, RFC 1035 §3.1).
LONG_NAME = (
    b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6
    + (b"\x3f" + b"a" * 63) * 3 + b"\x3e" + b"b" * 62 + b"\x00"
    + b"\x00\x01\x00\x01"
)  # fmt: skip


def query(name: str = NAME, rdtype: str = "SRV", ident: int = 4242, **kw: Any) -> bytes:
    message = dns.message.make_query(name, rdtype, **kw)
    message.id = ident
    return message.to_wire()


def limiter(rate: int = 5, slip: int = DEFAULT_SLIP, **kw: Any) -> ResponseRateLimiter:
    return ResponseRateLimiter(Clock(), rate, slip, **kw)


def outcomes(rrl: ResponseRateLimiter, count: int, host: str = "192.0.2.1") -> str:
    """One letter per datagram: ``a`` answered, ``d`` dropped, ``s`` slipped."""
    letters = ""
    for _ in range(count):
        instead = rrl.limit(query(), host)
        letters += "a" if instead is None else "d" if instead == DROP else "s"
    return letters


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_limited(self) -> None:
        """A network gets ``rate`` answers at once, then none until the
        bucket refills."""
        self.assertEqual(outcomes(limiter(rate=5, slip=0), 8), "aaaaaddd")

    def test_refills_at_rate(self) -> None:
        """Tokens come back at ``rate`` a second: one every 1/rate s."""
        rrl = limiter(rate=5, slip=0)
        clock: Any = rrl.clock
        outcomes(rrl, 5)
        clock.advance(0.1)
        self.assertEqual(outcomes(rrl, 1), "d")
        clock.advance(0.1)
        self.assertEqual(outcomes(rrl, 2), "ad")

    def test_burst_is_capped(self) -> None:
        """A long idle time earns no more than a burst of ``rate``."""
        rrl = limiter(rate=5, slip=0)
        clock: Any = rrl.clock
        outcomes(rrl, 5)
        clock.advance(3600)
        self.assertEqual(outcomes(rrl, 7), "aaaaadd")

    def test_clock_stepping_back_refills_nothing(self) -> None:
        """A wall clock set back neither refills a bucket nor stalls it."""
        rrl = limiter(rate=2, slip=0)
        clock: Any = rrl.clock
        clock.advance(100)
        outcomes(rrl, 2)
        clock.rightNow = 50.0
        self.assertEqual(outcomes(rrl, 1), "d")
        clock.advance(0.5)
        self.assertEqual(outcomes(rrl, 2), "ad")

    def test_bad_parameters(self) -> None:
        for kw in ({"rate": 0}, {"slip": -1}, {"max_prefixes": 0}):
            with self.assertRaises(ValueError):
                limiter(**kw)


class PrefixTests(SynchronousTestCase):
    def test_ipv4_by_24(self) -> None:
        self.assertEqual(prefix_of("192.0.2.1"), prefix_of("192.0.2.254"))
        self.assertNotEqual(prefix_of("192.0.2.1"), prefix_of("192.0.3.1"))
        self.assertNotEqual(prefix_of("10.1.2.3"), prefix_of("10.1.23.3"))

    def test_ipv6_by_56(self) -> None:
        self.assertEqual(prefix_of("2001:db8:0:1::1"), prefix_of("2001:db8:0:ff:1:2:3:4"))
        self.assertNotEqual(prefix_of("2001:db8:0:1::1"), prefix_of("2001:db8:0:100::1"))
        self.assertEqual(prefix_of("2001:0db8:0000:0001::1"), prefix_of("2001:db8:0:1::9"))

    def test_ipv4_mapped_and_scoped(self) -> None:
        """An IPv4 client on a dual-stack socket is limited by its /24; a
        link-local address's scope does not make a network of its own."""
        self.assertEqual(prefix_of("::ffff:192.0.2.7"), prefix_of("192.0.2.9"))
        self.assertEqual(prefix_of("fe80::1%eth0"), prefix_of("fe80::2"))

    def test_networks_share_a_bucket(self) -> None:
        """Clients of one network share its budget; another network has its own."""
        rrl = limiter(rate=2, slip=0)
        self.assertEqual(outcomes(rrl, 1, "192.0.2.1") + outcomes(rrl, 2, "192.0.2.99"), "aad")
        self.assertEqual(outcomes(rrl, 2, "198.51.100.1"), "aa")
        self.assertEqual(outcomes(rrl, 2, "2001:db8:0:1::1"), "aa")
        self.assertEqual(outcomes(rrl, 1, "2001:db8:0:2::1"), "d")


class SlipTests(SynchronousTestCase):
    def test_every_second_one_slips_by_default(self) -> None:
        rrl = limiter(rate=1)
        self.assertEqual(outcomes(rrl, 7), "adsdsds")
        self.assertEqual((rrl.dropped, rrl.slipped), (3, 3))

    def test_slip_cadence(self) -> None:
        self.assertEqual(outcomes(limiter(rate=1, slip=1), 4), "asss")
        self.assertEqual(outcomes(limiter(rate=1, slip=3), 7), "addsdds")

    def test_slip_zero_always_drops(self) -> None:
        rrl = limiter(rate=1, slip=0)
        self.assertEqual(outcomes(rrl, 5), "adddd")
        self.assertEqual((rrl.dropped, rrl.slipped), (4, 0))

    def test_truncated_reply(self) -> None:
        """The slip: the query's ID, question, opcode and RD, with QR and TC
        set, NOERROR, and no records, even for an EDNS query."""
        data = query("RaIlS.production.skydns.local", "A", ident=777, use_edns=0)
        reply = truncated_reply(data)
        assert reply is not None
        parsed = dns.message.from_wire(reply)
        self.assertEqual(parsed.id, 777)
        self.assertEqual(parsed.flags, dns.flags.QR | dns.flags.TC | dns.flags.RD)
        self.assertEqual(parsed.rcode(), dns.rcode.NOERROR)
        self.assertEqual(parsed.question, dns.message.from_wire(data).question)
        self.assertEqual(str(parsed.question[0].name), "RaIlS.production.skydns.local.")
        self.assertEqual((parsed.answer, parsed.authority, parsed.additional), ([], [], []))
        self.assertEqual(reply[12:], data[12 : len(reply)])

    def test_no_slip_for_what_is_not_a_question(self) -> None:
        """A response, a header alone, a cut name or a second question gets
        no TC reply: it is dropped."""
        good = query()
        response = good[:2] + bytes([good[2] | 0x80]) + good[3:]
        two = good[:5] + b"\x02" + good[6:]
        for data in (response, good[:12], good[:20], two, b"", LONG_NAME):
            self.assertIsNone(truncated_reply(data), data)
        rrl = limiter(rate=1, slip=1)
        rrl.limit(good, "192.0.2.1")
        self.assertEqual(rrl.limit(good[:12], "192.0.2.1"), DROP)
        self.assertEqual((rrl.dropped, rrl.slipped), (1, 0))


    @given(st.binary(max_size=600), st.integers(0, 600))
    @example(LONG_NAME, 0)
    @example(b"\x00" * 4 + b"\x00\x01" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01", 17)
    def test_truncated_reply_of_anything(self, data: bytes, cut: int) -> None:
        """Any bytes (arbitrary, or a real query cut anywhere): no exception;
        a reply, when there is one, is a TC answer to the same ID and question."""
        for packet in (data, query()[:cut]):
            reply = truncated_reply(packet)
            if reply is None:
                continue
            parsed = dns.message.from_wire(reply)
            self.assertTrue(parsed.flags & dns.flags.QR and parsed.flags & dns.flags.TC)
            self.assertEqual(reply[:2], packet[:2])
            self.assertEqual(reply[12:], packet[12 : len(reply)])


class TableBoundTests(SynchronousTestCase):
    def test_default_bound(self) -> None:
        self.assertEqual(limiter().max_prefixes, MAX_PREFIXES)

    def test_least_recently_heard_network_is_forgotten(self) -> None:
        """At the bound, the network heard from least recently is forgotten
        (and starts afresh); the others keep their state."""
        rrl = limiter(rate=1, slip=0, max_prefixes=2)
        self.assertEqual(outcomes(rrl, 1, "192.0.2.1"), "a")
        self.assertEqual(outcomes(rrl, 1, "198.51.100.1"), "a")
        self.assertEqual(outcomes(rrl, 1, "192.0.2.1"), "d")  # now the most recent
        self.assertEqual(outcomes(rrl, 1, "203.0.113.1"), "a")  # 198.51.100/24 goes
        self.assertEqual(len(rrl), 2)
        self.assertEqual(outcomes(rrl, 1, "192.0.2.1"), "d")
        self.assertEqual(outcomes(rrl, 1, "198.51.100.1"), "a")

    def test_many_networks_stay_bounded(self) -> None:
        rrl = limiter(rate=1, max_prefixes=100)
        for n in range(1000):
            rrl.limit(query(), f"10.{n // 256}.{n % 256}.1")
        self.assertEqual(len(rrl), 100)


# -- the server ------------------------------------------------------------------


class FakeSocket:
    """What `FastUDPPort.doRead` uses of a socket: queued datagrams in,
    datagrams out."""

    def __init__(self, datagrams: list[tuple[bytes, Any]]) -> None:
        self.incoming = list(datagrams)
        self.sent: list[tuple[bytes, Any]] = []

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.incoming:
            raise OSError(errno.EAGAIN, "would block")
        return self.incoming.pop(0)

    def sendto(self, data: bytes, address: Any) -> int:
        self.sent.append((data, address))
        return len(data)


def authority_server(clock: Clock, rrl: ResponseRateLimiter | None, **kw: Any) -> Any:
    registry = Registry()
    service = Service(
        uuid="uuid1", name="rails", environment="production", region="east",
        version="1.0.0", host="10.0.0.1", port=8001, ttl=600,
    )  # fmt: skip
    # Half a second into a lease, so answers stay exact (cacheable) for a while.
    registry.apply(Register(service, clock.seconds() - 0.5))
    authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
    return SkyDNSServerFactory(make_resolver(authority), clock, rate_limiter=rrl, **kw)


class ServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.rrl = ResponseRateLimiter(self.clock, 3)

    def udp(self, factory: SkyDNSServerFactory) -> tuple[Any, FakeUDPTransport]:
        protocol = factory.datagram_protocol()
        transport = FakeUDPTransport()
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        return protocol, transport

    def assert_limited(self, replies: list[bytes], answers: int = 3) -> None:
        """``answers`` full answers, then, of the rest, every second one a TC
        reply (the others dropped)."""
        parsed = [dns.message.from_wire(r) for r in replies]
        full = [m for m in parsed if not m.flags & dns.flags.TC]
        self.assertEqual(len(full), answers)
        for m in full:
            self.assertTrue(m.answer or m.authority, m)
        truncated = parsed[answers:]
        self.assertEqual(len(truncated), 3)
        for m in truncated:
            self.assertTrue(m.flags & dns.flags.TC)
            self.assertEqual(m.answer, [])

    def test_off_by_default(self) -> None:
        """Without a limiter every UDP query is answered."""
        factory = authority_server(self.clock, None)
        self.assertIsNone(factory.rate_limiter)
        protocol, transport = self.udp(factory)
        for n in range(50):
            protocol.datagramReceived(query(ident=n), CLIENT)
        self.assertEqual(len(transport.sent), 50)

    def test_fast_and_direct_paths_limited(self) -> None:
        """Through ``datagramReceived``: the first answer comes from the
        direct path, the next from the cache; both are limited."""
        factory = authority_server(self.clock, self.rrl)
        protocol, transport = self.udp(factory)
        for n in range(10):
            protocol.datagramReceived(query(ident=n), CLIENT)
        self.assertEqual([address for _, address in transport.sent], [CLIENT] * 6)
        self.assert_limited([data for data, _ in transport.sent])
        self.assertEqual((self.rrl.dropped, self.rrl.slipped), (4, 3))
        assert factory.answer_cache is not None
        self.assertEqual(sum(factory.answer_cache.udp_hits.values()), 2)

    def test_twisted_names_path_limited(self) -> None:
        """With the fast path off, the twisted.names path is limited too."""
        factory = SkyDNSServerFactory(
            StaticForwarder(), self.clock, fast_path=False, rate_limiter=self.rrl
        )
        self.assertIsNone(factory.answer_cache)
        protocol, transport = self.udp(factory)
        for n in range(10):
            protocol.datagramReceived(query("www.example.org", "A", ident=n), CLIENT)
        self.assert_limited([data for data, _ in transport.sent])

    def test_fast_read_loop_limited(self) -> None:
        """`FastUDPPort.doRead`, which answers cache hits without the
        protocol, puts every datagram to the limiter first."""
        factory = authority_server(self.clock, self.rrl)
        protocol = factory.datagram_protocol()
        port = FastUDPPort(0, protocol, "127.0.0.1", 512, self.clock)
        sock = FakeSocket([(query(ident=n), CLIENT) for n in range(10)])
        port.socket = sock  # type: ignore[assignment]
        protocol.makeConnection(port)
        port.doRead()
        self.assertEqual(sock.incoming, [])
        self.assertEqual([address for _, address in sock.sent], [CLIENT] * 6)
        self.assert_limited([data for data, _ in sock.sent])
        # The first answer was built, the next two were cache hits.
        self.assertEqual(sum(factory.answer_cache.udp_hits.values()), 2)

    def test_limit_recovers(self) -> None:
        """A second later the network is answered again."""
        factory = authority_server(self.clock, self.rrl)
        protocol, transport = self.udp(factory)
        for n in range(10):
            protocol.datagramReceived(query(ident=n), CLIENT)
        self.clock.advance(1)
        del transport.sent[:]
        for n in range(3):
            protocol.datagramReceived(query(ident=n), CLIENT)
        replies = [dns.message.from_wire(data) for data, _ in transport.sent]
        self.assertEqual([bool(m.flags & dns.flags.TC) for m in replies], [False] * 3)

    def test_tcp_never_limited(self) -> None:
        """Over TCP every query is answered, whatever UDP has used up."""
        factory = authority_server(self.clock, self.rrl)
        protocol, transport = self.udp(factory)
        for n in range(10):
            protocol.datagramReceived(query(ident=n), CLIENT)
        before = (self.rrl.dropped, self.rrl.slipped)
        for n in range(20):
            tcp = factory.buildProtocol(None)
            stream = StringTransport()
            tcp.makeConnection(stream)
            data = query(ident=n)
            tcp.dataReceived(struct.pack("!H", len(data)) + data)
            out = stream.value()
            tcp.connectionLost(None)
            reply = dns.message.from_wire(out[2:])
            self.assertFalse(reply.flags & dns.flags.TC)
            self.assertTrue(reply.answer)
        self.assertEqual((self.rrl.dropped, self.rrl.slipped), before)

    def test_metrics(self) -> None:
        """Dropped and slipped answers are counted by action, and are not
        counted as requests answered."""
        metrics = Metrics()
        factory = authority_server(self.clock, self.rrl, metrics=metrics)
        protocol, _ = self.udp(factory)
        for n in range(10):
            protocol.datagramReceived(query(ident=n), CLIENT)
        registry = metrics.registry

        def value(name: str, **labels: str) -> Any:
            return registry.get_sample_value(name, labels)

        self.assertEqual(value("skydns_dns_rrl_responses_total", action="dropped"), 4)
        self.assertEqual(value("skydns_dns_rrl_responses_total", action="slipped"), 3)
        self.assertEqual(value("skydns_dns_requests_total", type="SRV", proto="udp"), 3)


class OptionTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(["--no-forward", *args])
        return options

    def test_defaults(self) -> None:
        """Rate limiting is off by default; the slip is 2."""
        options = self.parse()
        self.assertEqual((options["rrl-rate"], options["rrl-slip"]), (0, 2))

    def test_parsed(self) -> None:
        options = self.parse("--rrl-rate", "20", "--rrl-slip", "0")
        self.assertEqual((options["rrl-rate"], options["rrl-slip"]), (20, 0))

    def test_bad_values_are_usage_errors_naming_the_flag(self) -> None:
        for flag, value in [
            ("--rrl-rate", "-1"),
            ("--rrl-rate", "fast"),
            ("--rrl-rate", "1.5"),
            ("--rrl-slip", "-2"),
            ("--rrl-slip", "often"),
        ]:
            with self.assertRaises(usage.UsageError) as raised:
                self.parse(flag, value)
            self.assertIn(flag, str(raised.exception))
