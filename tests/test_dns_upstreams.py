"""Upstream nameservers: parsing and loop avoidance, response validation, and
the Forwarder over real sockets: fake upstreams on loopback and, when
installed, nsd."""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any
from unittest import SkipTest

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.names import dns
from twisted.names.server import DNSServerFactory
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from skydns.dns.exchange import IUpstreamClient, NetworkClient, answers
from skydns.dns.forward import Forwarder
from skydns.dns.rcache import ResponseCache
from skydns.dns.upstreams import (
    Upstream,
    configured_upstreams,
    is_self,
    parse_nameservers,
    parse_resolv_conf,
    parse_upstream,
    without_self,
)
from tests.dns_fakes import (
    NSD_CONF,
    NSD_ZONE,
    FakeClient,
    FakeUpstream,
    Handler,
    answering,
    failing,
    nxdomain,
    query,
    response_to,
    silent,
    truncating,
)

reactor: Any = _reactor

U1 = Upstream("192.0.2.1", 53)


class UpstreamParsingTests(SynchronousTestCase):
    def test_nameserver_forms(self) -> None:
        """IPv4, IPv4:port, [IPv6]:port, [IPv6] and bare IPv6; port 53 by default."""
        self.assertEqual(
            parse_nameservers("8.8.8.8, 10.0.0.1:5353,[2001:db8::1]:54,[::1],2001:db8::2"),
            [
                Upstream("8.8.8.8", 53),
                Upstream("10.0.0.1", 5353),
                Upstream("2001:db8::1", 54),
                Upstream("::1", 53),
                Upstream("2001:db8::2", 53),
            ],
        )
        self.assertEqual(str(Upstream("2001:db8::1", 54)), "[2001:db8::1]:54")

    def test_bad_values_name_the_value(self) -> None:
        """A malformed --nameserver is a ValueError whose message names the bad value."""
        for bad, named in [
            ("dns.google:53", "dns.google"),
            ("1.2.3.4:0", "0"),
            ("1.2.3.4:70000", "70000"),
            ("1.2.3.4:x", "x"),
            ("[2001:db8::1", "[2001:db8::1"),
            ("[1.2.3.4]:53", "[1.2.3.4]:53"),
            ("[::1]53", "[::1]53"),
            (" , ", "lists no nameserver"),
        ]:
            with self.assertRaises(ValueError, msg=bad) as caught:
                parse_nameservers(bad)
            self.assertIn(named, str(caught.exception))

    def test_resolv_conf(self) -> None:
        """nameserver lines in order, comments and junk skipped, duplicates dropped."""
        content = (
            "# generated\nsearch example.org\nnameserver 10.0.0.1 # primary\n"
            "nameserver   ::1\n;nameserver 9.9.9.9\nnameserver bogus\nnameserver\n"
            "nameserver 10.0.0.1\noptions edns0\n"
        )
        self.assertEqual(
            parse_resolv_conf(content), [Upstream("10.0.0.1", 53), Upstream("::1", 53)]
        )

    def test_is_self(self) -> None:
        """The listening address and its 0.0.0.0 / loopback equivalents, on our port, are us."""
        self.assertTrue(is_self(Upstream("127.0.0.1", 53), "127.0.0.1", 53))
        self.assertTrue(is_self(Upstream("0.0.0.0", 53), "127.0.0.1", 53))
        self.assertTrue(is_self(Upstream("::ffff:127.0.0.1", 53), "127.0.0.1", 53))
        self.assertTrue(is_self(Upstream("127.0.0.1", 53), "0.0.0.0", 53))
        self.assertTrue(is_self(Upstream("::1", 53), "::", 53))
        self.assertTrue(is_self(Upstream("::", 53), "::1", 53))
        self.assertTrue(is_self(Upstream("10.1.1.1", 53), "0.0.0.0", 53, ["10.1.1.1"]))
        # Another port, another address, or a separate loopback stub is not us.
        self.assertFalse(is_self(Upstream("127.0.0.1", 53), "127.0.0.1", 8053))
        self.assertFalse(is_self(Upstream("127.0.0.53", 53), "127.0.0.1", 53))
        self.assertFalse(is_self(Upstream("127.0.0.53", 53), "0.0.0.0", 53))
        self.assertFalse(is_self(Upstream("10.1.1.1", 53), "0.0.0.0", 53))
        self.assertFalse(is_self(Upstream("::1", 53), "127.0.0.1", 53))

    def test_resolv_conf_pointing_at_us_is_dropped(self) -> None:
        """A resolv.conf naming SkyDNS itself does not make SkyDNS forward to itself."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("nameserver 127.0.0.1\nnameserver 127.0.0.53\nnameserver 0.0.0.0\n")
        self.assertEqual(
            configured_upstreams(None, "127.0.0.1", 53, resolv_conf=path),
            [Upstream("127.0.0.53", 53)],
        )
        self.assertEqual(
            configured_upstreams(None, "127.0.0.1", 8053, resolv_conf=path),
            [Upstream("127.0.0.1"), Upstream("127.0.0.53"), Upstream("0.0.0.0")],
        )

    def test_missing_resolv_conf_means_no_upstreams(self) -> None:
        """No resolv.conf: no upstreams (forwarding answers SERVFAIL), not a crash."""
        self.assertEqual(configured_upstreams(None, "127.0.0.1", 53, self.mktemp()), [])

    def test_nameserver_option_wins_and_only_self_is_an_error(self) -> None:
        """--nameserver replaces resolv.conf; naming only SkyDNS itself is a ValueError."""
        self.assertEqual(
            configured_upstreams("9.9.9.9", "127.0.0.1", 53, self.mktemp()), [Upstream("9.9.9.9")]
        )
        self.assertEqual(without_self([Upstream("127.0.0.1", 8053), U1], "127.0.0.1", 8053), [U1])
        with self.assertRaisesRegex(ValueError, "127.0.0.1:8053.*loop"):
            configured_upstreams("127.0.0.1:8053", "127.0.0.1", 8053)

    def test_parse_upstream_default_port(self) -> None:
        """A bare address gets port 53."""
        self.assertEqual(parse_upstream("1.1.1.1"), Upstream("1.1.1.1", 53))


class ResponseValidationTests(SynchronousTestCase):
    def test_only_the_answer_to_our_question_is_accepted(self) -> None:
        """answers() takes a response with our id and question (any case) and
        rejects other ids, other questions, queries and garbage (RFC 5452)."""
        request = query(b"www.example.org", id=7)
        good = response_to(request)
        good.queries = [dns.Query(b"WWW.example.org", dns.A)]
        self.assertIsNotNone(answers(request, good.toStr()))
        other_id = response_to(request)
        other_id.id = 8
        other_name = response_to(request)
        other_name.queries = [dns.Query(b"evil.example.org", dns.A)]
        other_type = response_to(request)
        other_type.queries = [dns.Query(b"www.example.org", dns.AAAA)]
        not_a_response = dns.Message(id=7)
        not_a_response.queries = list(request.queries)
        for bad in (other_id, other_name, other_type, not_a_response):
            self.assertIsNone(answers(request, bad.toStr()))
        self.assertIsNone(answers(request, b"\x00\x07\x80"))
        bare_formerr = dns.Message(id=7, answer=1, rCode=dns.EFORMAT)
        self.assertIsNotNone(answers(request, bare_formerr.toStr()))

    def test_network_client_provides_interface(self) -> None:
        """NetworkClient and the test fake both provide IUpstreamClient."""
        from twisted.internet.testing import MemoryReactorClock

        verifyObject(IUpstreamClient, NetworkClient(MemoryReactorClock()))
        verifyObject(IUpstreamClient, FakeClient())


# --- Against real sockets: fake upstreams on loopback, a forwarding server, nsd. ---

FAST: dict[str, Any] = {"timeout": 0.3, "total_timeout": 1.0}


class ForwardingFactory(DNSServerFactory):
    """A minimal server that forwards every question (what the SkyDNS server
    does for names outside its domain)."""

    def __init__(self, forwarder: Forwarder) -> None:
        super().__init__()
        self.forwarder = forwarder

    def handleQuery(self, message: dns.Message, protocol: Any, address: Any) -> Any:
        d = self.forwarder.handle_query(message, protocol, address)
        return d.addCallback(lambda reply: self.sendReply(protocol, reply, address))


class NetworkTests(TestCase):
    """The forwarder with a NetworkClient, against fake upstreams on 127.0.0.1."""

    def start(self, handler: Handler) -> tuple[Upstream, FakeUpstream]:
        fake = FakeUpstream(handler)
        upstream = fake.start(reactor)
        self.addCleanup(fake.stop)
        return upstream, fake

    def forwarder(self, upstreams: list[Upstream], **kw: Any) -> Forwarder:
        options: dict[str, Any] = dict(FAST)
        options.update(kw)
        return Forwarder(upstreams, reactor, **options)

    async def ask(
        self, forwarder: Forwarder, name: bytes = b"www.example.org", tcp: bool = False, **kw: Any
    ) -> dns.Message:
        return await forwarder.resolve(query(name, **kw), tcp=tcp)

    def run_async(self, coroutine: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(coroutine)

    def test_udp_answer(self) -> Deferred[Any]:
        """A UDP question is relayed over UDP and the answer comes back."""

        async def go() -> None:
            upstream, fake = self.start(answering(count=2))
            reply = await self.ask(self.forwarder([upstream]))
            self.assertEqual((reply.rCode, len(reply.answers), reply.recAv), (dns.OK, 2, 1))
            self.assertEqual((fake.udp_count, fake.tcp_count), (1, 0))

        return self.run_async(go())

    def test_tcp_client_goes_tcp(self) -> Deferred[Any]:
        """A TCP question is relayed over TCP."""

        async def go() -> None:
            upstream, fake = self.start(answering())
            reply = await self.ask(self.forwarder([upstream]), tcp=True)
            self.assertEqual(reply.rCode, dns.OK)
            self.assertEqual((fake.udp_count, fake.tcp_count), (0, 1))

        return self.run_async(go())

    def test_timeout_failover(self) -> Deferred[Any]:
        """A silent upstream is abandoned after the timeout for the next one."""

        async def go() -> None:
            quiet, quiet_fake = self.start(silent)
            good, good_fake = self.start(answering())
            started = reactor.seconds()
            reply = await self.ask(self.forwarder([quiet, good]))
            self.assertEqual(reply.rCode, dns.OK)
            self.assertGreaterEqual(reactor.seconds() - started, 0.29)
            self.assertEqual((quiet_fake.udp_count, good_fake.udp_count), (1, 1))

        return self.run_async(go())

    def test_tcp_timeout_failover(self) -> Deferred[Any]:
        """Over TCP too, an upstream that accepts but never answers is given up
        for the next one."""

        async def go() -> None:
            quiet, quiet_fake = self.start(silent)
            good, good_fake = self.start(answering())
            reply = await self.ask(self.forwarder([quiet, good]), tcp=True)
            self.assertEqual(reply.rCode, dns.OK)
            self.assertEqual((quiet_fake.tcp_count, good_fake.tcp_count), (1, 1))

        return self.run_async(go())

    def test_servfail_and_unreachable_failover(self) -> Deferred[Any]:
        """SERVFAIL and a closed port (ICMP unreachable) both lead to the next upstream."""

        async def go() -> None:
            bad, bad_fake = self.start(failing(dns.ESERVER))
            good, good_fake = self.start(answering())
            closed, closed_fake = self.start(silent)
            await closed_fake.stop()
            started = reactor.seconds()
            reply = await self.ask(self.forwarder([bad, closed, good], timeout=5, total_timeout=5))
            self.assertEqual(reply.rCode, dns.OK)
            self.assertLess(reactor.seconds() - started, 4)  # no timeout was waited for
            self.assertEqual((bad_fake.udp_count, good_fake.udp_count), (1, 1))

        return self.run_async(go())

    def test_truncated_udp_falls_back_to_tcp(self) -> Deferred[Any]:
        """TC over UDP: the same upstream is asked over TCP and the full answer relayed."""

        async def go() -> None:
            upstream, fake = self.start(truncating(count=40))
            edns = dns._OPTHeader(udpPayloadSize=4096)
            reply = await self.ask(self.forwarder([upstream]), edns=edns)
            self.assertEqual((reply.trunc, len(reply.answers)), (0, 40))
            self.assertEqual((fake.udp_count, fake.tcp_count), (1, 1))

        return self.run_async(go())

    def test_negative_caching_and_expiry(self) -> Deferred[Any]:
        """NXDOMAIN with SOA is answered from cache until min(SOA TTL, MINIMUM)."""

        async def go() -> None:
            upstream, fake = self.start(nxdomain(ttl=3600, minimum=30))
            clock = Clock()
            forwarder = self.forwarder([upstream], cache=ResponseCache(clock))
            for _ in range(2):
                self.assertEqual((await self.ask(forwarder)).rCode, dns.ENAME)
            self.assertEqual(fake.udp_count, 1)
            clock.advance(30)
            self.assertEqual((await self.ask(forwarder)).rCode, dns.ENAME)
            self.assertEqual(fake.udp_count, 2)

        return self.run_async(go())

    def test_all_fail_servfail(self) -> Deferred[Any]:
        """Silent upstreams only: SERVFAIL once total_timeout has passed, not later."""

        async def go() -> None:
            upstreams = [self.start(silent)[0] for _ in range(3)]
            started = reactor.seconds()
            forwarder = self.forwarder(upstreams, timeout=0.2, total_timeout=0.5)
            reply = await self.ask(forwarder)
            elapsed = reactor.seconds() - started
            self.assertEqual(reply.rCode, dns.ESERVER)
            self.assertTrue(0.49 <= elapsed < 2.0, elapsed)

        return self.run_async(go())

    def serve(self, forwarder: Forwarder) -> Upstream:
        """A forwarding server on 127.0.0.1 (UDP and TCP, one port)."""
        factory = ForwardingFactory(forwarder)
        for _ in range(20):
            udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
            self.addCleanup(udp.stopListening)
            try:
                tcp = reactor.listenTCP(udp.getHost().port, factory, interface="127.0.0.1")
            except CannotListenError:
                continue
            self.addCleanup(tcp.stopListening)
            return Upstream("127.0.0.1", udp.getHost().port)
        raise RuntimeError("no free port")

    def test_loop_through_own_address_is_broken(self) -> Deferred[Any]:
        """A server whose first upstream is itself (say, its LAN address, which
        start-up filtering cannot see) refuses its own looped query and
        answers from the next upstream at once, not after a timeout."""

        async def go() -> None:
            good, good_fake = self.start(answering())
            upstreams: list[Upstream] = []
            forwarder = self.forwarder(upstreams, timeout=5, total_timeout=5)
            server = self.serve(forwarder)
            upstreams += [server, good]
            forwarder.upstreams = upstreams
            started = reactor.seconds()
            reply = await self.ask(forwarder)
            self.assertEqual(reply.rCode, dns.OK)
            self.assertLess(reactor.seconds() - started, 4)
            self.assertEqual((forwarder.loops, good_fake.udp_count), (1, 1))

        return self.run_async(go())

    def test_through_a_server_with_dnspython(self) -> Deferred[Any]:
        """dnspython, over UDP with EDNS and over TCP, gets the relayed answer
        from a forwarding server with RA, its id and an OPT record."""
        from dns import flags as dnsflags
        from dns import message as dnsmessage
        from dns import query as dnsquery

        async def go() -> None:
            upstream, fake = self.start(answering(count=3))
            server = self.serve(self.forwarder([upstream]))
            request = dnsmessage.make_query("www.example.org", "A", use_edns=0, payload=1232)

            def both() -> tuple[Any, Any]:
                udp = dnsquery.udp(request, server.host, port=server.port, timeout=3)
                tcp = dnsquery.tcp(request, server.host, port=server.port, timeout=3)
                return udp, tcp

            udp, tcp = await deferToThread(both)
            for reply in (udp, tcp):
                self.assertEqual(reply.id, request.id)
                self.assertTrue(reply.flags & dnsflags.RA)
                self.assertEqual(reply.edns, 0)
                self.assertEqual(len(reply.answer[0]), 3)
            self.assertEqual(fake.udp_count, 1)  # TCP was answered from the cache

        return self.run_async(go())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


class NSDTests(TestCase):
    """Forwarding to a real authoritative server, nsd, started on a free port."""

    async def start_nsd(self) -> Upstream:
        nsd = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)
        if nsd is None:
            raise SkipTest("nsd is not installed")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        port = _free_port()
        with open(os.path.join(directory, "example.test.zone"), "w") as f:
            f.write(NSD_ZONE)
        conf = os.path.join(directory, "nsd.conf")
        with open(conf, "w") as f:
            f.write(NSD_CONF.format(port=port, dir=directory))
        process = _Ended()
        transport = reactor.spawnProcess(process, nsd, [nsd, "-d", "-c", conf], env=os.environ)

        def stop() -> Deferred[None]:
            if not process.ended.called:
                transport.signalProcess("TERM")
            return process.ended

        self.addCleanup(stop)
        upstream = Upstream("127.0.0.1", port)
        probe = Forwarder([upstream], reactor, timeout=0.2, total_timeout=0.2)
        for _ in range(50):  # up to ~10 s for nsd to load the zone and listen
            if process.ended.called:
                break
            reply = await probe.resolve(query(b"ns1.example.test"), tcp=False)
            if reply.rCode == dns.OK and reply.answers:
                return upstream
            await deferLater(reactor, 0.1, lambda: None)
        with open(os.path.join(directory, "nsd.log")) as f:
            self.fail("nsd did not start:\n" + f.read())

    def test_forward_to_nsd(self) -> Deferred[Any]:
        """Answers, NXDOMAIN with SOA (cached) and a TC answer fetched again over
        TCP all come through from nsd."""

        async def go() -> None:
            upstream = await self.start_nsd()
            forwarder = Forwarder([upstream], reactor, cache=ResponseCache(reactor), **FAST)
            reply = await forwarder.resolve(query(b"WWW.example.test"), tcp=False)
            self.assertEqual(reply.rCode, dns.OK)
            payload = reply.answers[0].payload
            assert isinstance(payload, dns.Record_A)
            self.assertEqual(payload.dottedQuad(), "192.0.2.80")
            self.assertEqual(reply.queries[0].name.name, b"WWW.example.test")

            missing = await forwarder.resolve(query(b"nope.example.test"), tcp=False)
            self.assertEqual(missing.rCode, dns.ENAME)
            self.assertEqual([r.type for r in missing.authority], [dns.SOA])
            again = await forwarder.resolve(query(b"nope.example.test"), tcp=False)
            self.assertEqual(again.rCode, dns.ENAME)
            self.assertEqual(forwarder.forwarded, 2)

            # nsd truncates 40 A records for a client without EDNS; we fetch
            # them over TCP, then give our UDP client (no EDNS) TC, and TCP all.
            udp = await forwarder.resolve(query(b"big.example.test"), tcp=False)
            self.assertEqual((udp.trunc, udp.answers), (1, []))
            self.assertEqual(forwarder.forwarded, 4)  # UDP with TC, then TCP
            tcp = await forwarder.resolve(query(b"big.example.test"), tcp=True)
            self.assertEqual((tcp.trunc, len(tcp.answers)), (0, 40))
            self.assertEqual(forwarder.forwarded, 4)

        return Deferred.fromCoroutine(go())
