"""The Forwarder: failover, TCP fallback, caching, replies, client networks
(synchronous, with a fake network).  Upstream parsing and real sockets are in
tests/test_dns_upstreams.py."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import address as taddress
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.acl import parse_networks
from skydns.dns.edns import ClientEDNS, fit
from skydns.dns.forward import Forwarder
from skydns.dns.rcache import ResponseCache
from skydns.dns.upstreams import (
    Upstream,
)
from tests.dns_fakes import (
    FakeClient,
    a_records,
    answering,
    failing,
    nxdomain,
    opt_of,
    query,
    response_to,
    truncating,
)

U1, U2, U3, U4 = (Upstream(f"192.0.2.{i}", 53) for i in range(1, 5))


class ForwarderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.cache = ResponseCache(self.clock)
        self.forwarder = self.make([U1, U2, U3])

    def make(self, upstreams: list[Upstream], **kw: Any) -> Forwarder:
        return Forwarder(
            upstreams,
            self.clock,
            cache=kw.pop("cache", self.cache),
            client=self.client,
            rng=random.Random(1),
            **kw,
        )

    def asked(self) -> list[tuple[Upstream, bool]]:
        return [(upstream, tcp) for upstream, _, tcp, _ in self.client.calls]

    def test_relays_answer(self) -> None:
        """The reply has the client's id, RD, question (case kept), RA, and the
        upstream's records; the upstream was asked with a fresh id and RD."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.assertNoResult(d)
        (upstream, request, tcp, _), *rest = self.client.calls
        self.assertEqual((upstream, tcp, rest), (U1, False, []))
        self.assertNotEqual(request.id, 4242)
        self.assertEqual(request.recDes, 1)
        self.assertEqual(request.queries, [dns.Query(b"www.Example.ORG", dns.A)])
        response = response_to(request)
        response.answers = a_records(b"www.example.org", 2)
        response.authority = [
            dns.RRHeader(b"example.org", dns.NS, dns.IN, 60, dns.Record_NS(b"ns.example.org"))  # type: ignore[arg-type]
        ]
        response.additional = a_records(b"ns.example.org", 1)
        self.client.reply(0, response)
        reply = self.successResultOf(d)
        self.assertEqual((reply.id, reply.answer, reply.recAv, reply.recDes), (4242, 1, 1, 1))
        self.assertEqual((reply.rCode, reply.trunc, reply.auth), (dns.OK, 0, 0))
        self.assertEqual(reply.queries[0].name.name, b"www.Example.ORG")
        self.assertEqual([r.name.name for r in reply.answers], [b"www.Example.ORG"] * 2)
        self.assertEqual([r.type for r in reply.authority], [dns.NS])
        self.assertEqual([r.name.name for r in reply.additional], [b"ns.example.org"])
        self.assertEqual(self.forwarder.forwarded, 1)

    def test_client_transport_is_kept(self) -> None:
        """A TCP client's question goes upstream over TCP, a UDP one over UDP."""
        self.forwarder.resolve(query(b"a.example"), tcp=True)
        self.forwarder.resolve(query(b"b.example"), tcp=False)
        self.assertEqual(self.asked(), [(U1, True), (U1, False)])

    def test_timeout_moves_to_next_upstream(self) -> None:
        """An upstream silent for `timeout` seconds is abandoned for the next one."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.clock.advance(1.9)
        self.assertEqual(self.asked(), [(U1, False)])
        self.clock.advance(0.1)
        self.assertEqual(self.asked(), [(U1, False), (U2, False)])
        self.assertEqual(self.client.cancelled, [U1])
        self.client.answer(1, answering())
        self.assertEqual(self.successResultOf(d).rCode, dns.OK)

    def test_servfail_and_refused_move_to_next_upstream(self) -> None:
        """SERVFAIL from the first upstream and REFUSED from the second lead to the third."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.client.answer(0, failing(dns.ESERVER))
        self.client.answer(1, failing(dns.EREFUSED))
        self.client.answer(2, answering(3))
        self.assertEqual([u for u, _ in self.asked()], [U1, U2, U3])
        self.assertEqual(len(self.successResultOf(d).answers), 3)
        self.assertEqual(self.forwarder.failures, 2)

    def test_upstream_failures_logged_once_per_ten_seconds(self) -> None:
        """An upstream failing every question is one log line per kind of
        failure per 10 s, not one per question; the next line says how many
        were held back."""
        forwarder = self.make([U1])
        with capturedLogs() as events:
            for i in range(5):
                forwarder.resolve(query(b"q%d.example.org" % i), tcp=False)
                self.client.answer(i, failing(dns.ESERVER))
            self.clock.advance(10)
            forwarder.resolve(query(b"late.example.org"), tcp=False)
            self.client.answer(5, failing(dns.ESERVER))
        lines = [e for e in events if "upstream" in e.get("log_format", "")]
        self.assertEqual(forwarder.failures, 6)
        self.assertEqual([(e["upstream"], e["held"]) for e in lines], [(str(U1), 0), (str(U1), 4)])

    def test_nxdomain_is_relayed_not_retried(self) -> None:
        """NXDOMAIN is an answer: relayed with its SOA, no other upstream asked."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.client.answer(0, nxdomain())
        reply = self.successResultOf(d)
        self.assertEqual((reply.rCode, [r.type for r in reply.authority]), (dns.ENAME, [dns.SOA]))
        self.assertEqual(len(self.client.calls), 1)

    def test_truncated_udp_answer_retried_over_tcp(self) -> None:
        """TC over UDP: the same upstream is asked again over TCP, and its answer relayed."""
        d = self.forwarder.resolve(query(), tcp=True)  # a TCP client: no size limit
        self.client.calls.clear()
        d = self.forwarder.resolve(query(b"other.example"), tcp=False)
        self.client.answer(0, truncating(count=3))
        self.assertEqual(self.asked(), [(U1, False), (U1, True)])
        self.client.answer(1, truncating(count=3))
        reply = self.successResultOf(d)
        self.assertEqual((reply.trunc, len(reply.answers)), (0, 3))

    def test_all_fail_servfail_within_total_time(self) -> None:
        """Nobody answers: SERVFAIL after total_timeout (5 s), the last upstream
        getting only the time left; a fourth upstream is never asked."""
        forwarder = self.make([U1, U2, U3, U4])
        d = forwarder.resolve(query(), tcp=False)
        self.clock.pump([2, 2, 0.9])
        self.assertNoResult(d)
        self.assertEqual([u for u, _ in self.asked()], [U1, U2, U3])
        self.clock.advance(0.1)
        reply = self.successResultOf(d)
        self.assertEqual((reply.rCode, reply.id, reply.recAv), (dns.ESERVER, 4242, 1))
        self.assertEqual([u for u, _ in self.asked()], [U1, U2, U3])
        self.assertEqual(forwarder.servfails, 1)

    def test_servfail_is_remembered_a_second(self) -> None:
        """A question that found no answer is answered SERVFAIL at once for
        a second (RFC 9520: not cached as data), then goes upstream again."""
        forwarder = self.make([U1])
        d = forwarder.resolve(query(), tcp=False)
        self.client.answer(0, failing(dns.ESERVER))
        self.assertEqual(self.successResultOf(d).rCode, dns.ESERVER)
        again = forwarder.resolve(query(), tcp=False)
        self.assertEqual(self.successResultOf(again).rCode, dns.ESERVER)
        self.assertEqual(len(self.client.calls), 1)
        self.clock.advance(1.0)
        forwarder.resolve(query(), tcp=False)
        self.assertEqual(len(self.client.calls), 2)

    def test_no_upstreams_servfail(self) -> None:
        """With no upstream at all the answer is an immediate SERVFAIL."""
        d = self.make([]).resolve(query(), tcp=False)
        self.assertEqual(self.successResultOf(d).rCode, dns.ESERVER)

    def test_cache_hit_counts_ttl_down_then_expires(self) -> None:
        """A repeated question is answered from the cache with TTLs counted
        down; after the TTL it goes upstream again."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.client.answer(0, answering(ttl=100))
        self.assertEqual(self.successResultOf(d).answers[0].ttl, 100)
        self.clock.advance(40)
        reply = self.successResultOf(self.forwarder.resolve(query(b"WWW.example.org", id=9), False))
        self.assertEqual(len(self.client.calls), 1)
        self.assertEqual((reply.id, reply.answers[0].ttl), (9, 60))
        self.assertEqual(reply.answers[0].name.name, b"WWW.example.org")
        self.assertEqual((self.cache.hits, self.cache.misses), (1, 1))
        self.clock.advance(60)
        self.assertNoResult(self.forwarder.resolve(query(), tcp=False))
        self.assertEqual(len(self.client.calls), 2)

    def test_negative_answer_cached_until_soa_minimum(self) -> None:
        """NXDOMAIN with SOA (TTL 3600, MINIMUM 60) is served from cache for 60 s,
        the SOA's TTL counting down from 60 (RFC 2308 §5), the first reply too."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.client.answer(0, nxdomain(ttl=3600, minimum=60))
        self.assertEqual([r.ttl for r in self.successResultOf(d).authority], [60])
        self.clock.advance(59)
        reply = self.successResultOf(self.forwarder.resolve(query(), tcp=False))
        self.assertEqual(reply.rCode, dns.ENAME)
        self.assertEqual([r.ttl for r in reply.authority], [1])
        self.assertEqual(len(self.client.calls), 1)
        self.clock.advance(1)
        self.assertNoResult(self.forwarder.resolve(query(), tcp=False))
        self.assertEqual(len(self.client.calls), 2)

    def test_identical_questions_in_flight_share_one_upstream_query(self) -> None:
        """Two clients asking the same thing at once cause one upstream query."""
        first = self.forwarder.resolve(query(id=1), tcp=False)
        second = self.forwarder.resolve(query(b"WWW.EXAMPLE.ORG", id=2), tcp=False)
        self.assertEqual(len(self.client.calls), 1)
        self.client.answer(0, answering())
        self.assertEqual(self.successResultOf(first).id, 1)
        self.assertEqual(self.successResultOf(second).id, 2)
        self.assertEqual(self.forwarder.coalesced, 1)

    def test_own_query_coming_back_is_refused(self) -> None:
        """A query from the local address of one of our upstream sockets is our
        own forwarded query looping back: REFUSED, nothing forwarded."""
        self.client.own.add(("127.0.0.1", 40000))
        d = self.forwarder.resolve(query(), tcp=False, source=("127.0.0.1", 40000))
        self.assertEqual(self.successResultOf(d).rCode, dns.EREFUSED)
        self.assertEqual((self.client.calls, self.forwarder.loops), ([], 1))

    def test_zone_transfer_not_forwarded(self) -> None:
        """AXFR is refused, not forwarded."""
        d = self.forwarder.resolve(query(type=dns.AXFR), tcp=True)
        self.assertEqual(self.successResultOf(d).rCode, dns.EREFUSED)
        self.assertEqual(self.client.calls, [])

    def test_edns_preserved(self) -> None:
        """A client's OPT: the upstream query carries OPT with the DO bit, and
        the reply carries our OPT; without OPT neither does."""
        d = self.forwarder.resolve(
            query(edns=dns._OPTHeader(udpPayloadSize=4096, dnssecOK=True)), tcp=False
        )
        request = self.client.calls[0][1]
        self.assertEqual([(o.udpPayloadSize, o.dnssecOK) for o in opt_of(request)], [(1232, True)])
        self.client.answer(0, answering())
        reply = self.successResultOf(d)
        self.assertEqual([(o.udpPayloadSize, o.dnssecOK) for o in opt_of(reply)], [(1232, True)])
        d = self.forwarder.resolve(query(b"plain.example"), tcp=False)
        self.assertEqual(opt_of(self.client.calls[1][1]), [])
        self.client.answer(1, answering())
        self.assertEqual(opt_of(self.successResultOf(d)), [])

    def test_dnssec_flags_pass_through(self) -> None:
        """DO and CD go upstream as the client set them; the upstream's AD
        comes back to a client that asked for DNSSEC data (DO), and is
        cleared for one that did not (RFC 6840 §5.8)."""

        def authentic(request: dns.Message, tcp: bool) -> dns.Message:
            response = answering()(request, tcp)
            response.authenticData = 1
            return response

        asked = query(edns=dns._OPTHeader(udpPayloadSize=4096, dnssecOK=True))
        asked.checkingDisabled = 1
        d = self.forwarder.resolve(asked, tcp=False)
        upstream = self.client.calls[0][1]
        self.assertEqual((upstream.checkingDisabled, opt_of(upstream)[0].dnssecOK), (1, True))
        self.client.answer(0, authentic)
        reply = self.successResultOf(d)
        self.assertEqual((reply.authenticData, reply.checkingDisabled), (1, 1))
        d = self.forwarder.resolve(query(b"plain.example"), tcp=False)
        self.assertEqual(self.client.calls[1][1].checkingDisabled, 0)
        self.client.answer(1, authentic)
        self.assertEqual(self.successResultOf(d).authenticData, 0)

    def test_large_answer_truncated_for_udp_client(self) -> None:
        """An answer over 512 bytes reaches a UDP client without EDNS as TC with
        no records; the same question over TCP, and with EDNS 4096, gets all of it."""
        d = self.forwarder.resolve(query(), tcp=True)
        self.client.answer(0, answering(count=40))
        full = self.successResultOf(d)
        self.assertEqual((len(full.answers), full.trunc), (40, 0))
        self.assertGreater(len(full.toStr()), 512)
        udp = self.successResultOf(self.forwarder.resolve(query(), tcp=False))
        self.assertEqual((udp.trunc, udp.answers), (1, []))
        self.assertLessEqual(len(udp.toStr()), 512)
        big = self.successResultOf(
            self.forwarder.resolve(query(edns=dns._OPTHeader(udpPayloadSize=4096)), tcp=False)
        )
        self.assertEqual((big.trunc, len(big.answers)), (0, 40))
        # The size limit is left on the reply (a server may read it) and the reply fits it.
        self.assertEqual((full.maxSize, udp.maxSize, big.maxSize), (0, 512, 1232))
        on_wire = dns.Message()
        on_wire.fromStr(big.toStr())
        self.assertEqual((on_wire.trunc, len(on_wire.answers)), (0, 40))
        self.assertEqual(len(self.client.calls), 1)

    def test_handle_query_reads_transport_and_peer(self) -> None:
        """handle_query: address None means TCP, the peer comes from the transport."""

        class Transport:
            def getPeer(self) -> taddress.IPv4Address:
                return taddress.IPv4Address("TCP", "127.0.0.1", 40001)

        class Proto:
            transport = Transport()

        self.client.own.add(("127.0.0.1", 40001))
        d = self.forwarder.handle_query(query(), Proto(), None)
        self.assertEqual(self.successResultOf(d).rCode, dns.EREFUSED)
        self.forwarder.handle_query(query(), object(), ("10.0.0.9", 1234))
        self.assertEqual(self.asked(), [(U1, False)])

    def test_stop_abandons_lookups(self) -> None:
        """stop() cancels the questions in flight; their clients get SERVFAIL and
        no timer is left behind."""
        d = self.forwarder.resolve(query(), tcp=False)
        self.forwarder.stop()
        self.assertEqual(self.successResultOf(d).rCode, dns.ESERVER)
        self.assertEqual(self.client.cancelled, [U1])
        self.assertEqual(len(self.client.calls), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_bad_settings_rejected(self) -> None:
        """Non-positive timeouts and impossible payload sizes are ValueErrors."""
        for kw in ({"timeout": 0}, {"total_timeout": -1}, {"udp_payload": 100}):
            with self.assertRaises(ValueError):
                self.make([U1], **kw)


class ForwardAllowTests(SynchronousTestCase):
    """``allow`` (--forward-allow): only clients in those networks are forwarded for."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.client = FakeClient()
        self.forwarder = Forwarder(
            [U1],
            self.clock,
            cache=ResponseCache(self.clock),
            client=self.client,
            allow=parse_networks("10.0.0.0/8,::1/128"),
        )

    def test_client_outside_is_refused_without_asking_upstream(self) -> None:
        """A UDP client outside the networks gets REFUSED with RA clear, its id,
        question and OPT; nothing goes upstream."""
        message = query(edns=dns._OPTHeader(udpPayloadSize=1232))
        reply = self.successResultOf(
            self.forwarder.handle_query(message, object(), ("192.0.2.9", 5353))
        )
        self.assertEqual((reply.rCode, reply.recAv, reply.id), (dns.EREFUSED, 0, 4242))
        self.assertEqual(reply.queries[0].name.name, b"www.Example.ORG")
        self.assertEqual(len(opt_of(reply)), 1)
        self.assertEqual((self.client.calls, self.forwarder.refused), ([], 1))

    def test_client_inside_is_forwarded(self) -> None:
        d = self.forwarder.handle_query(query(), object(), ("10.9.8.7", 5353))
        self.client.answer(0, answering())
        reply = self.successResultOf(d)
        self.assertEqual((reply.rCode, reply.recAv, len(reply.answers)), (dns.OK, 1, 1))

    def test_tcp_client_judged_by_its_peer(self) -> None:
        """Over TCP the client address is the transport's peer (IPv6 too)."""

        def proto(host: str) -> Any:
            class Transport:
                def getPeer(self) -> Any:
                    kind = taddress.IPv6Address if ":" in host else taddress.IPv4Address
                    return kind("TCP", host, 40001)

            class Proto:
                transport = Transport()

            return Proto()

        refused = self.successResultOf(self.forwarder.handle_query(query(), proto("8.8.8.8"), None))
        self.assertEqual(refused.rCode, dns.EREFUSED)
        self.forwarder.handle_query(query(), proto("::1"), None)
        self.assertEqual(self.asked(), [(U1, True)])

    def test_unknown_client_is_refused(self) -> None:
        """With an allow list, a client whose address cannot be known is refused."""
        reply = self.successResultOf(self.forwarder.handle_query(query(), object(), None))
        self.assertEqual(reply.rCode, dns.EREFUSED)

    def test_cached_answer_not_served_to_client_outside(self) -> None:
        """An answer cached for an allowed client is not given to a refused one."""
        d = self.forwarder.handle_query(query(), object(), ("10.0.0.1", 1))
        self.client.answer(0, answering())
        self.assertEqual(self.successResultOf(d).rCode, dns.OK)
        reply = self.successResultOf(self.forwarder.handle_query(query(), object(), ("1.1.1.1", 1)))
        self.assertEqual((reply.rCode, reply.answers), (dns.EREFUSED, []))

    def test_replies_are_client_specific_with_an_allow_list(self) -> None:
        """With an allow list a reply depends on the client (a server must
        not share it between clients); without one it does not."""
        self.assertTrue(self.forwarder.client_specific)
        self.assertFalse(Forwarder([U1], self.clock, client=self.client).client_specific)

    def asked(self) -> list[tuple[Upstream, bool]]:
        return [(upstream, tcp) for upstream, _, tcp, _ in self.client.calls]


class MaxPendingTests(SynchronousTestCase):
    def test_questions_beyond_max_pending_get_servfail_at_once(self) -> None:
        """With max_pending distinct questions in flight, a new one is answered
        SERVFAIL without a socket; an identical one still joins its question;
        room comes back when a question finishes."""
        clock = Clock()
        client = FakeClient()
        forwarder = Forwarder([U1], clock, client=client, max_pending=2)
        first = forwarder.resolve(query(b"a.example"), tcp=False)
        forwarder.resolve(query(b"b.example"), tcp=False)
        over = self.successResultOf(forwarder.resolve(query(b"c.example"), tcp=False))
        self.assertEqual((over.rCode, forwarder.overloaded, len(client.calls)), (dns.ESERVER, 1, 2))
        joined = forwarder.resolve(query(b"a.example"), tcp=False)
        self.assertEqual(len(client.calls), 2)
        client.answer(0, answering())
        self.assertEqual(self.successResultOf(first).rCode, dns.OK)
        self.assertEqual(self.successResultOf(joined).rCode, dns.OK)
        forwarder.resolve(query(b"c.example"), tcp=False)
        self.assertEqual(len(client.calls), 3)
        with self.assertRaises(ValueError):
            Forwarder([U1], clock, client=client, max_pending=0)


class FitTests(SynchronousTestCase):
    def test_additional_dropped_before_truncating(self) -> None:
        """If dropping additional records is enough, they go and TC stays clear."""
        message = response_to(query())
        message.answers = a_records(b"www.example.org", 10)
        message.additional = a_records(b"ns.example.org", 20) + [
            dns._OPTHeader()  # type: ignore[list-item]
        ]
        fit(message, 512)
        self.assertEqual((message.trunc, len(message.answers)), (0, 10))
        self.assertEqual([r.type for r in message.additional], [dns.OPT])

    def test_client_edns_of_both_message_kinds(self) -> None:
        """ClientEDNS reads a plain Message's OPT record and an _EDNSMessage."""
        edns = ClientEDNS.of(query(edns=dns._OPTHeader(udpPayloadSize=1400, dnssecOK=True)))
        self.assertEqual((edns.present, edns.payload, edns.dnssec_ok), (True, 1400, True))
        self.assertFalse(ClientEDNS.of(query()).present)
        message = dns._EDNSMessage(maxSize=2000, dnssecOK=True)
        self.assertEqual(ClientEDNS.of(message).payload, 2000)
        self.assertFalse(ClientEDNS.of(dns._EDNSMessage(ednsVersion=None)).present)

    def test_client_edns_with_malformed_options(self) -> None:
        """An OPT record whose options are cut short (hostile bytes) still gives
        its payload size and DO bit instead of an exception."""
        wire = bytearray(query(edns=dns._OPTHeader(udpPayloadSize=1400, dnssecOK=True)).toStr())
        wire[-2:] = b"\x00\x06"  # RDLENGTH 6 ...
        wire += b"\x00\x0a\x00\x08\x01\x02"  # ... holding an option that claims 8 bytes
        message = dns.Message()
        message.fromStr(bytes(wire))
        edns = ClientEDNS.of(message)
        self.assertEqual((edns.present, edns.payload, edns.dnssec_ok), (True, 1400, True))
