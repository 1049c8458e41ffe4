"""Tests for the DNS fast path: `skydns.dns.answercache` and its use by
`skydns.dns.server`.

The central property: for any question, the bytes the fast path sends (a
cache hit, or the direct authority answer on a miss) are the bytes the
twisted.names path sends for the same request at the same moment with the
same registry, whatever the name's case, EDNS size or flags, as leases run
down and the registry changes.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from skydns.commands import Register, Renew, Unregister
from skydns.dns.acl import parse_networks
from skydns.dns.answercache import DEFAULT_MAX_ENTRIES, AnswerCache
from skydns.dns.authority import SkyDNSAuthority, make_resolver
from skydns.dns.forward import Forwarder
from skydns.dns.server import SkyDNSServerFactory
from skydns.dns.service import DNSService
from skydns.dns.upstreams import Upstream
from skydns.dns.wirequery import parse_query, restore_question
from skydns.metrics import Metrics
from skydns.names import Service
from skydns.registry import Registry
from tests.dns_fakes import FakeClient, answering
from tests.test_dns_server import CLIENT, FakeUDPTransport, StaticForwarder

DOMAIN = "skydns.local"
NAMES = ("rails", "db")
ENVIRONMENTS = ("production", "staging")
REGIONS = ("east", "west")


def wire(name: str, rdtype: Any = "SRV", **kwargs: Any) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()


def with_id(data: bytes, ident: int) -> bytes:
    return struct.pack("!H", ident) + data[2:]


def recase(data: bytes, mask: int) -> bytes:
    """``data`` with the letters of its question name upper-cased where
    ``mask`` has a bit set (as a 0x20-randomising resolver would)."""
    out = bytearray(data)
    at, bit = 12, 0
    while out[at]:
        end = at + 1 + out[at]
        for i in range(at + 1, end):
            if chr(out[i]).isalpha() and mask >> (bit % 60) & 1:
                out[i] = ord(chr(out[i]).upper())
            bit += 1
        at = end
    return bytes(out)


class Server:
    """A factory with its UDP protocol on a fake transport."""

    def __init__(self, factory: SkyDNSServerFactory) -> None:
        self.factory = factory
        self.udp = factory.datagram_protocol()
        self.transport = FakeUDPTransport()
        self.udp.makeConnection(self.transport)  # type: ignore[arg-type]

    def ask(self, data: bytes) -> list[bytes]:
        del self.transport.sent[:]
        self.udp.datagramReceived(data, CLIENT)
        return [sent for sent, _ in self.transport.sent]

    def ask_tcp(self, data: bytes) -> bytes:
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(struct.pack("!H", len(data)) + data)
        out = transport.value()
        protocol.connectionLost(None)
        (length,) = struct.unpack("!H", out[:2])
        assert len(out) == 2 + length
        return out[2:]


def service(n: int, name: str, env: str, region: str, host: str, ttl: int, **kw: Any) -> Service:
    return Service(
        uuid=f"uuid{n}",
        name=name,
        environment=env,
        region=region,
        version="1.0.0",
        host=host,
        port=8000 + n,
        ttl=ttl,
        **kw,
    )


# -- the parser ----------------------------------------------------------------


class ParseQueryTests(unittest.SynchronousTestCase):
    def test_plain_query(self) -> None:
        """A plain query: name lower-cased, type, class, where the question
        ends, 512 bytes without EDNS; the key ignores the ID and name case."""
        data = wire("Rails.Production.skydns.local", "SRV")
        query = parse_query(data)
        assert query is not None
        self.assertEqual(query.name, b"rails.production.skydns.local")
        self.assertEqual((query.qtype, query.qclass), (33, 1))
        self.assertEqual(query.question_end, len(data))
        self.assertEqual(query.udp_limit, 512)
        self.assertFalse(query.edns)
        self.assertTrue(query.recursion_desired)
        other = parse_query(with_id(data.lower(), 7))
        assert other is not None
        self.assertEqual(other.key, query.key)

    def test_edns(self) -> None:
        """EDNS payload sizes are clamped to 512..max_udp (1232 by default)
        and are part of the key; well-formed options (a cookie) are accepted."""
        small = parse_query(wire("a.skydns.local", use_edns=0, payload=100))
        big = parse_query(wire("a.skydns.local", use_edns=0, payload=65000))
        cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"12345678")
        with_cookie = parse_query(wire("a.skydns.local", use_edns=0, options=[cookie]))
        assert small is not None and big is not None and with_cookie is not None
        self.assertEqual((small.udp_limit, big.udp_limit), (512, 1232))
        self.assertEqual(parse_query(wire("a.skydns.local", use_edns=0, payload=65000),
                                     4096).udp_limit, 4096)  # fmt: skip
        self.assertTrue(small.edns)
        self.assertNotEqual(small.key, big.key)

    def test_unusual_requests_rejected(self) -> None:
        """Anything but one plain question (with at most a plain OPT) is left
        to the full path."""
        plain = wire("a.skydns.local", "A")
        cases = {
            "response": plain[:2] + bytes([plain[2] | 0x80]) + plain[3:],
            "opcode": plain[:2] + bytes([plain[2] | 0x10]) + plain[3:],
            "two questions": plain[:4] + b"\x00\x02" + plain[6:] + plain[12:],
            "answer count": plain[:6] + b"\x00\x01" + plain[8:],
            "trailing": plain + b"\x00",
            "truncated": plain[:-1],
            "header only": plain[:12],
            "pointer": plain[:12] + b"\xc0\x0c\x00\x01\x00\x01",
            "dot in label": plain[:12] + b"\x03a.b\x00\x00\x01\x00\x01",
            "nul in label": plain[:12] + b"\x03a\x00b\x00\x00\x01\x00\x01",
            "a flag beside DO": wire("a.skydns.local", use_edns=0)[:-4] + b"\x40\x00" + b"\x00\x00",
            "EDNS version 1": wire("a.skydns.local", use_edns=1),
            "two additional": plain[:10] + b"\x00\x02" + plain[12:],
        }
        cases["long name"] = plain[:12] + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01"
        with_additional = plain[:10] + b"\x00\x01" + plain[12:]
        opt = b"\x00" + struct.pack("!HHBBHH", 41, 4096, 0, 0, 0, 6)
        cases["bad option length"] = with_additional + opt + b"\x00\x0a\x00\x09ab"
        good = with_additional + opt + b"\x00\x0a\x00\x02ab"
        self.assertIsNotNone(parse_query(good))
        asked = parse_query(wire("a.skydns.local", want_dnssec=True))
        assert asked is not None
        self.assertTrue(asked.dnssec_ok)  # DO queries take the fast path (signed if a key is set)
        for label, data in cases.items():
            self.assertIsNone(parse_query(data), label)

    @given(st.binary(max_size=80))
    def test_never_raises(self, data: bytes) -> None:
        """Random bytes never make the parser or a cache lookup raise."""
        parse_query(data)
        parse_query(wire("a.skydns.local", use_edns=0)[:12] + data)
        AnswerCache(lambda: 0.0).answer(data)

    @given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4))
    def test_mutations_never_raise(self, mutations: list[tuple[int, int]]) -> None:
        """Mutated queries parse or are rejected, never raise."""
        data = bytearray(wire("rails.production.skydns.local", use_edns=0))
        for at, value in mutations:
            data[at % len(data)] = value
        query = parse_query(bytes(data))
        if query is not None:
            # The hit path finds what the parser keyed (it derives the key alone).
            cache = AnswerCache(lambda: 0.0)
            response = bytes([data[0], data[1], data[2] | 0x80]) + bytes(data[3:])
            self.assertTrue(cache.store(query, response, 1.0, 0))
            self.assertEqual(cache.answer(bytes(data)), response)


# -- the cache -----------------------------------------------------------------


class AnswerCacheTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.cache = AnswerCache(self.clock.seconds, max_entries=4)

    def response_to(self, data: bytes) -> bytes:
        request = dns.message.from_wire(data)
        response = dns.message.make_response(request)
        return response.to_wire()

    def test_hit_patches_id_and_question(self) -> None:
        """A hit has the client's ID and the client's spelling of the name."""
        data = wire("rails.production.skydns.local")
        query = parse_query(data)
        assert query is not None
        self.assertTrue(self.cache.store(query, self.response_to(data), 10.0, 0))
        other = with_id(recase(data, 0b1010101), 4242)
        hit = self.cache.answer(other)
        assert hit is not None
        self.assertEqual(hit[:2], other[:2])
        self.assertEqual(hit[12 : query.question_end], other[12 : query.question_end])
        self.assertEqual(hit[2:12], self.response_to(data)[2:12])

    def test_expiry(self) -> None:
        """An entry is served before its time and missed from then on."""
        data = wire("a.skydns.local", "A")
        query = parse_query(data)
        assert query is not None
        self.cache.store(query, self.response_to(data), 2.0, 0)
        self.clock.advance(1.999)
        self.assertIsNotNone(self.cache.answer(data))
        self.clock.advance(0.001)
        self.assertIsNone(self.cache.answer(data))
        self.assertEqual(self.cache.expired, 1)
        self.assertFalse(self.cache.store(query, self.response_to(data), 2.0, 0))

    def test_clear_and_generation(self) -> None:
        """`clear` drops entries, and an answer computed before it is not kept."""
        data = wire("a.skydns.local", "A")
        query = parse_query(data)
        assert query is not None
        generation = self.cache.generation
        self.cache.store(query, self.response_to(data), math.inf, generation)
        self.cache.clear()
        self.assertIsNone(self.cache.answer(data))
        self.assertFalse(self.cache.store(query, self.response_to(data), math.inf, generation))
        self.assertTrue(
            self.cache.store(query, self.response_to(data), math.inf, self.cache.generation)
        )

    def test_bounded(self) -> None:
        """At most two generations of ``max_entries`` are kept; a hit in the
        old generation survives the next rotation."""
        queries = [wire(f"n{i}.skydns.local", "A") for i in range(12)]
        for data in queries:
            query = parse_query(data)
            assert query is not None
            self.cache.store(query, self.response_to(data), math.inf, 0)
            self.assertLessEqual(len(self.cache), 8)
        self.assertIsNone(self.cache.answer(queries[0]))
        self.assertIsNotNone(self.cache.answer(queries[-1]))

    def fill(self, cache: AnswerCache, count: int) -> list[bytes]:
        queries = [wire(f"n{i}.skydns.local", "A") for i in range(count)]
        for data in queries:
            query = parse_query(data)
            assert query is not None
            cache.store(query, self.response_to(data), math.inf, cache.generation)
        return queries

    def test_bound_follows_the_registry(self) -> None:
        """With ``max_entries`` 0 the bound is 10,000 plus twice the
        instances, read again at each `clear` (every registry change)."""
        instances = [3]
        cache = AnswerCache(self.clock.seconds, 0, size_hint=lambda: instances[0])
        self.assertEqual(cache.max_entries, DEFAULT_MAX_ENTRIES + 6)
        instances[0] = 100_000
        cache.clear()
        self.assertEqual(cache.max_entries, DEFAULT_MAX_ENTRIES + 200_000)
        self.assertEqual(AnswerCache(self.clock.seconds, 7).max_entries, 7)

    def test_memory_bound(self) -> None:
        """Whatever ``max_entries``, the tables stay within ``max_bytes``
        (estimated), and what is dropped is counted."""
        cache = AnswerCache(self.clock.seconds, 1_000_000, max_bytes=80_000)
        queries = self.fill(cache, 2000)
        for _ in range(3):
            cache.clear()
            self.fill(cache, 2000)
        self.assertLessEqual(cache.estimated_size(), 80_000)
        self.assertLess(len(cache), 200)
        self.assertGreater(cache.evicted, 1500)
        self.assertIsNotNone(cache.answer(queries[-1]))

    def test_letters_outside_the_name_are_not_folded(self) -> None:
        """Type 0x0061 is not type 0x0041, nor is flags byte 0x61 0x41, though
        the key lower-cases the whole request."""
        lower_type = wire("a.skydns.local", 0x61)
        query = parse_query(lower_type)
        assert query is not None
        self.cache.store(query, self.response_to(lower_type), math.inf, 0)
        self.assertIsNotNone(self.cache.answer(lower_type))
        self.assertIsNone(self.cache.answer(wire("a.skydns.local", 0x41)))
        flags = lower_type[:3] + b"\x61" + lower_type[4:]
        query = parse_query(flags)
        assert query is not None
        self.cache.store(query, self.response_to(flags), math.inf, 0)
        self.assertIsNotNone(self.cache.answer(flags))
        self.assertIsNone(self.cache.answer(flags[:3] + b"\x41" + flags[4:]))

    def test_wrong_question_not_stored(self) -> None:
        """A response whose question is not the query's is refused."""
        data = wire("a.skydns.local", "A")
        query = parse_query(data)
        assert query is not None
        other = self.response_to(wire("b.skydns.local", "A"))
        self.assertFalse(self.cache.store(query, other, math.inf, 0))
        self.assertFalse(self.cache.store(query, other[:14], math.inf, 0))

    def test_revalidate_after_clear(self) -> None:
        """After a clear, an entry stored with its sources is served again
        (client's ID and spelling) only when they are unchanged and its
        time has not come; then it is current again (a plain hit)."""
        data = wire("rails.production.skydns.local", "A")
        query = parse_query(data)
        assert query is not None
        response = self.response_to(data)
        self.assertTrue(self.cache.store(query, response, 5.0, 0, sources="reads"))
        self.cache.clear()
        self.assertIsNone(self.cache.answer(data))
        asked: list[Any] = []

        def unchanged(sources: Any) -> bool:
            asked.append(sources)
            return True

        variant = with_id(recase(data, 0b1011), 77)
        again = self.cache.revalidate(variant, query, unchanged)
        self.assertEqual(asked, ["reads"])
        assert again is not None
        self.assertEqual(again[:2], variant[:2])
        self.assertEqual(again[12 : query.question_end], variant[12 : query.question_end])
        self.assertEqual(
            again[2:12] + again[query.question_end :],
            response[2:12] + response[query.question_end :],
        )
        self.assertEqual(self.cache.revalidated, 1)
        self.assertIsNotNone(self.cache.answer(data))  # current again
        # Changed sources: not served, and set aside no more.
        self.cache.clear()
        self.assertIsNone(self.cache.revalidate(data, query, lambda sources: False))
        self.assertIsNone(self.cache.revalidate(data, query, unchanged))
        self.assertEqual(len(asked), 1)

    def test_revalidate_needs_sources_and_time(self) -> None:
        """Entries stored without sources, or whose TTLs have ticked, are
        never revalidated; nor is anything over the other transport."""
        data = wire("a.skydns.local", "A")
        query = parse_query(data)
        assert query is not None
        self.cache.store(query, self.response_to(data), 5.0, 0)
        self.cache.clear()
        self.assertIsNone(self.cache.revalidate(data, query, lambda sources: True))
        self.cache.store(query, self.response_to(data), 5.0, 1, sources="reads")
        self.cache.clear()
        self.assertIsNone(self.cache.revalidate(data, query, lambda sources: True, tcp=True))
        self.clock.advance(5.0)
        self.assertIsNone(self.cache.revalidate(data, query, lambda sources: True))

    def test_parsed_queries_survive_clear(self) -> None:
        """`query` parses once per key, across clears, but never hands a
        parse over to bytes that differ outside the name."""
        data = wire("rails.production.skydns.local", 0x61)
        first = self.cache.query(data)
        self.cache.clear()
        self.assertIs(self.cache.query(with_id(recase(data, 0b111), 5)), first)
        other = self.cache.query(wire("rails.production.skydns.local", 0x41))
        assert other is not None
        self.assertEqual(other.qtype, 0x41)
        self.assertIsNone(self.cache.query(b"\x00junk"))
        self.assertIsNone(self.cache.query(b"\x00junk"))

    def test_restore_question(self) -> None:
        self.assertEqual(
            restore_question(b"H" * 12 + b"abc" + b"rest", b"ABC"), b"H" * 12 + b"ABCrest"
        )


# -- fast path against full path ---------------------------------------------------


hosts = st.one_of(
    st.integers(1, 254).map(lambda n: f"10.0.0.{n}"),
    st.integers(1, 254).map(lambda n: f"2001:db8::{n:x}"),
    st.sampled_from(["db.example.com", "Web.Example.com"]),
)
instances = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.sampled_from(ENVIRONMENTS),
        st.sampled_from(REGIONS),
        hosts,
        st.integers(1, 30),  # ttl
        st.floats(0, 10),  # registered this long before the start
        st.booleans(),  # no_expire
    ),
    max_size=8,
)
question_names = st.one_of(
    st.builds(
        lambda n, e: f"{n}.{e}.{DOMAIN}", st.sampled_from(NAMES), st.sampled_from(ENVIRONMENTS)
    ),
    st.builds(
        lambda r, n, e: f"{r}.{n}.{e}.{DOMAIN}",
        st.sampled_from(REGIONS + ("north", "*")),
        st.sampled_from(NAMES),
        st.sampled_from(ENVIRONMENTS),
    ),
    st.integers(0, 9).map(lambda n: f"uuid{n}.{DOMAIN}"),
    st.sampled_from(
        [
            DOMAIN,
            f"node1.ns.dns.{DOMAIN}",
            f"ns.dns.{DOMAIN}",
            f"production.{DOMAIN}",
            "example.com",
            ".",
        ]
    ),
    st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9-]{1,8}){0,2}", fullmatch=True).map(
        lambda s: f"{s}.{DOMAIN}"
    ),
)
question_types = st.one_of(
    st.sampled_from(["SRV", "A", "AAAA", "SRV", "A", "AAAA", "ANY", "TXT", "SOA", "NS", "AXFR"]),
    st.integers(1, 65535),
)
edns = st.one_of(st.none(), st.sampled_from([0, 100, 512, 600, 1232, 4096, 65535]))
questions = st.tuples(
    question_names,
    question_types,
    edns,
    st.sampled_from(["IN", "IN", "IN", "IN", "ANY", "CH"]),
    st.booleans(),  # RD
    st.integers(0, 2**60),  # case mask
    st.integers(0, 65535),  # id
    st.floats(0, 3),  # seconds to wait first
    st.booleans(),  # over TCP
)
#: A registry change before a question: (0 = none, 1 = register, 2 = unregister,
#: 3 = renew), uuid, name.
changes = st.tuples(st.sampled_from([0, 0, 0, 1, 2, 3]), st.integers(0, 9), st.sampled_from(NAMES))


def build_query(question: tuple[Any, ...]) -> bytes:
    name, rdtype, payload, rdclass, rd, mask, ident, _, _ = question
    kwargs: dict[str, Any] = {"rdclass": dns.rdataclass.from_text(rdclass)}
    if payload is not None:
        kwargs.update(use_edns=0, payload=payload)
    message = dns.message.make_query(name, dns.rdatatype.RdataType.make(rdtype), **kwargs)
    message.id = ident
    if not rd:
        message.flags &= ~dns.flags.RD
    return recase(message.to_wire(), mask)


class EquivalenceTests(unittest.SynchronousTestCase):
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        instances,
        st.lists(st.tuples(questions, changes, st.integers(0, 99)), min_size=1, max_size=25),
    )
    def test_fast_path_sends_full_path_bytes(
        self, registered: list[tuple[Any, ...]], steps: list[tuple[Any, Any, int]]
    ) -> None:
        """For random registries and questions the fast path (miss, then
        hit, then a case variant) sends exactly what the twisted.names path
        sends; after a registry change, too."""
        clock = Clock()
        clock.advance(1000)
        registry = Registry()
        for n, (name, env, region, host, ttl, age, no_expire) in enumerate(registered):
            svc = service(n, name, env, region, host, ttl, no_expire=no_expire)
            registry.apply(Register(svc, clock.seconds() - age))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        fast = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        # The reference: the twisted.names path (records as `dns.RRHeader`s,
        # encoded by Twisted), over an authority of its own.
        reference = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        full = Server(SkyDNSServerFactory(make_resolver(reference), clock, fast_path=False))
        assert fast.factory.answer_cache is not None
        asked: list[bytes] = []
        for question, change, again in steps:
            clock.advance(question[7])
            kind, n, name = change
            if kind:
                if kind == 1:
                    svc = service(n, name, "production", "east", f"10.1.0.{n + 1}", 20)
                    registry.apply(Register(svc, clock.seconds()))
                elif kind == 3:
                    registry.apply(Renew(f"uuid{n}", 15, clock.seconds()))
                else:
                    registry.apply(Unregister(f"uuid{n}", clock.seconds()))
            if asked:
                # An earlier question, now that time has passed (or the registry changed).
                earlier = asked[again % len(asked)]
                self.assertEqual(fast.ask(earlier), full.ask(earlier))
            data = build_query(question)
            if question[8]:
                expected = full.ask_tcp(data)
                self.assertEqual(fast.ask_tcp(data), expected)
                self.assertEqual(fast.ask_tcp(data), expected)
                continue
            asked.append(data)
            expected_list = full.ask(data)
            self.assertEqual(fast.ask(data), expected_list)
            self.assertEqual(fast.ask(data), expected_list)
            variant = recase(with_id(data, question[6] ^ 0x5A5A), ~question[5])
            self.assertEqual(fast.ask(variant), full.ask(variant))
        cache = fast.factory.answer_cache
        self.assertGreaterEqual(cache.misses + sum(cache.udp_hits.values()), 1)

    def test_hits_are_hits(self) -> None:
        """A repeated question is answered from the cache (case variants too),
        and the answer carries the client's ID and spelling."""
        clock = Clock()
        clock.advance(1000.5)
        registry = Registry()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 1000))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        cache = server.factory.answer_cache
        assert cache is not None
        data = wire("rails.production.skydns.local")
        (first,) = server.ask(data)
        variant = with_id(recase(data, 0b110011), 99)
        (second,) = server.ask(variant)
        self.assertEqual(sum(cache.udp_hits.values()), 1)
        self.assertEqual(second[:2], variant[:2])
        response = dns.message.from_wire(second)
        self.assertEqual(
            str(response.question[0].name), str(dns.message.from_wire(variant).question[0].name)
        )
        self.assertEqual(response.answer[0].name, response.question[0].name)
        self.assertEqual(response.answer[0].ttl, 59)

    def test_ttl_never_exceeds_lease(self) -> None:
        """A cached answer is rebuilt when its TTL would exceed the lease left."""
        clock = Clock()
        clock.advance(1000.5)
        registry = Registry()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 1000.2))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        data = wire("rails.production.skydns.local", "A")
        for _ in range(400):
            (reply,) = server.ask(data)
            (record,) = dns.message.from_wire(reply).answer
            self.assertLessEqual(record.ttl, 1060.2 - clock.seconds())
            self.assertGreater(record.ttl, 1060.2 - clock.seconds() - 1)
            clock.advance(0.25)
            if clock.seconds() >= 1060.2:
                break
        (reply,) = server.ask(data)
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.NXDOMAIN)

    def test_answers_survive_ttl_ticks(self) -> None:
        """A cached answer is not rebuilt when its TTLs tick down: the hit
        rewrites them (one rewrite a second at most), and a lease's end is
        the end of the entry."""
        clock = Clock()
        clock.advance(1000.5)
        registry = Registry()
        for n, start in enumerate((1000.2, 1000.7, 999.1)):
            svc = service(n, "rails", "production", "east", f"10.0.0.{n + 1}", 30)
            registry.apply(Register(svc, start))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        reference = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        full = Server(SkyDNSServerFactory(make_resolver(reference), clock, fast_path=False))
        cache = server.factory.answer_cache
        assert cache is not None
        data = wire("rails.production.skydns.local", "SRV", use_edns=0, payload=1232)
        server.ask(data)
        self.assertEqual(cache.misses, 1)
        for _ in range(100):  # 25 seconds, every record's TTL ticking
            clock.advance(0.25)
            if clock.seconds() >= 1029.1:
                break
            self.assertEqual(server.ask(data), full.ask(data))
        self.assertEqual(cache.misses, 1)
        self.assertGreater(cache.retimed, 20)
        self.assertLessEqual(cache.retimed, 3 * 29)
        clock.advance(1029.1 - clock.seconds())  # the first lease ends
        self.assertEqual(server.ask(data), full.ask(data))
        self.assertEqual(len(dns.message.from_wire(server.ask(data)[0]).answer[0]), 2)
        self.assertEqual(cache.misses + cache.expired, 2)

    def test_registry_change_visible_at_once(self) -> None:
        """An instance registered (or removed) is in the very next answer."""
        clock = Clock()
        registry = Registry()
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        data = wire("rails.production.skydns.local", "A")
        for _ in range(2):
            (reply,) = server.ask(data)
            self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.NXDOMAIN)
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 0))
        (reply,) = server.ask(data)
        self.assertEqual(len(dns.message.from_wire(reply).answer), 1)
        registry.apply(Unregister("uuid1", 0))
        (reply,) = server.ask(data)
        self.assertEqual(dns.message.from_wire(reply).rcode(), dns.rcode.NXDOMAIN)

    def test_unaffected_answers_stay_cached(self) -> None:
        """After a registry change, an answer whose instances did not change
        stays a cache hit; one whose instance changed (renewed: new TTL) or
        gained one is dropped and rebuilt; a whole state installed clears
        the cache, and an unaffected answer is then revalidated."""
        clock = Clock()
        clock.advance(1000.5)
        registry = Registry()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 1000))
        registry.apply(Register(service(2, "db", "production", "east", "10.0.0.2", 60), 1000))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        cache = server.factory.answer_cache
        assert cache is not None
        rails = wire("rails.production.skydns.local", "SRV")
        db = wire("uuid2.skydns.local", "A")
        (rails_before,) = server.ask(rails)
        (db_before,) = server.ask(db)
        clock.advance(0.1)
        registry.apply(Renew("uuid1", 30, clock.seconds()))
        hits = sum(cache.udp_hits.values())
        (db_after,) = server.ask(db)
        self.assertEqual(db_after, db_before)
        self.assertEqual(sum(cache.udp_hits.values()), hits + 1)
        (rails_after,) = server.ask(rails)
        self.assertEqual(sum(cache.udp_hits.values()), hits + 1)
        self.assertEqual(cache.invalidated, 1)
        self.assertEqual(dns.message.from_wire(rails_after).answer[0].ttl, 29)
        self.assertNotEqual(rails_after, rails_before)
        registry.apply(
            Register(service(3, "rails", "production", "west", "10.0.0.3", 60), clock.seconds())
        )
        (rails_more,) = server.ask(rails)
        self.assertEqual(len(dns.message.from_wire(rails_more).answer[0]), 2)
        (db_again,) = server.ask(db)
        self.assertEqual(db_again, db_before)
        self.assertEqual(sum(cache.udp_hits.values()), hits + 2)
        other = Registry()
        other.apply(Register(service(2, "db", "production", "east", "10.0.0.2", 60), 1000))
        registry.replace_with(other)
        (db_new,) = server.ask(db)  # another instance object: rebuilt
        self.assertEqual(cache.revalidated, 0)
        (db_again,) = server.ask(db)
        self.assertEqual(db_again, db_new)
        registry.apply(Unregister("uuid2", clock.seconds()))
        (gone,) = server.ask(db)
        self.assertEqual(dns.message.from_wire(gone).rcode(), dns.rcode.NXDOMAIN)

    def test_revalidated_answers_are_dropped_by_later_changes(self) -> None:
        """An answer served again by revalidation after a clear is indexed
        again: a later change of its instance drops it."""
        clock = Clock()
        clock.advance(1000.5)
        registry = Registry()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 1000))
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock))
        cache = server.factory.answer_cache
        assert cache is not None
        data = wire("rails.production.skydns.local", "SRV")
        (first,) = server.ask(data)
        cache.clear()
        self.assertEqual(server.ask(data), [first])
        self.assertEqual(cache.revalidated, 1)
        registry.apply(Renew("uuid1", 30, clock.seconds()))
        (renewed,) = server.ask(data)
        self.assertEqual(dns.message.from_wire(renewed).answer[0].ttl, 30)

    def test_forwarded_answers_cached_a_second(self) -> None:
        """An answer from outside the domain is served from the cache for a
        second at most, then asked for again."""
        clock = Clock()
        registry = Registry()
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        forwarder = StaticForwarder()
        asked = []
        original = forwarder._lookup

        def counting(*args: Any, **kwargs: Any) -> Any:
            asked.append(args[0])
            return original(*args, **kwargs)

        forwarder._lookup = counting  # type: ignore[method-assign]
        factory = SkyDNSServerFactory(make_resolver(authority, forwarder), clock, can_recurse=True)
        server = Server(factory)
        data = wire("Example.com", "A")
        replies = [server.ask(data) for _ in range(3)]
        self.assertEqual(len(asked), 1)
        self.assertEqual(replies[0], replies[2])
        self.assertEqual(str(dns.message.from_wire(replies[0][0]).question[0].name), "Example.com.")
        clock.advance(1.0)
        server.ask(data)
        self.assertEqual(len(asked), 2)

    def test_client_specific_forwarded_answers_not_cached(self) -> None:
        """A forwarded answer is kept in the answer cache, unless the
        forwarder says its replies depend on the client (--forward-allow)."""
        clock = Clock()
        authority = SkyDNSAuthority(Registry(), clock, DOMAIN, [("node1", "127.0.0.1")])
        for allow, kept in ((parse_networks("127.0.0.0/8"), 0), (None, 1)):
            client = FakeClient()
            forwarder = Forwarder([Upstream("192.0.2.1", 53)], clock, client=client, allow=allow)
            factory = SkyDNSServerFactory(make_resolver(authority), clock, forwarder=forwarder)
            server = Server(factory)
            self.assertEqual(server.ask(wire("www.example.org", "A")), [])
            client.answer(0, answering())
            (reply,) = [sent for sent, _ in server.transport.sent]
            self.assertEqual(len(dns.message.from_wire(reply).answer), 1)
            assert factory.answer_cache is not None
            self.assertEqual(len(factory.answer_cache), kept)

    def test_metrics(self) -> None:
        """Hits, misses, queries by type and transport and responses by rcode
        reach the Prometheus families at scrape time."""
        clock = Clock()
        registry = Registry()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), 0))
        clock.advance(0.5)
        authority = SkyDNSAuthority(registry, clock, DOMAIN, [("node1", "127.0.0.1")])
        metrics = Metrics()
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock, metrics=metrics))
        for _ in range(3):
            server.ask(wire("rails.production.skydns.local", "SRV"))
        server.ask(wire("nope.production.skydns.local", "A"))
        server.ask_tcp(wire("rails.production.skydns.local", "A"))
        server.ask(b"\x00garbage")
        text = metrics.render()[0].decode()

        def value(line: str) -> float:
            for each in text.splitlines():
                if each.startswith(line + " "):
                    return float(each.split()[-1])
            self.fail(f"no {line} in\n{text}")

        self.assertEqual(value('skydns_dns_requests_total{proto="udp",type="SRV"}'), 3)
        self.assertEqual(value('skydns_dns_requests_total{proto="udp",type="A"}'), 1)
        self.assertEqual(value('skydns_dns_requests_total{proto="tcp",type="A"}'), 1)
        self.assertEqual(value('skydns_dns_responses_total{rcode="NOERROR"}'), 4)
        self.assertEqual(value('skydns_dns_responses_total{rcode="NXDOMAIN"}'), 1)
        self.assertEqual(value('skydns_dns_cache_total{cache="answer",result="hit"}'), 2)
        self.assertEqual(value("skydns_dns_malformed_total"), 1)
        # One answer in 64 built by the authority is timed, the first included.
        self.assertEqual(
            value('skydns_dns_request_duration_seconds_count{source="authority"}'), 1
        )
        self.assertEqual(value('skydns_dns_cache_entries{cache="answer"}'), 3)
        # The garbage too: parses are remembered whatever they give.
        self.assertEqual(value('skydns_dns_cache_entries{cache="parse"}'), 4)
        self.assertGreater(value("skydns_dns_cache_bytes"), 3 * 400)
        self.assertEqual(value('skydns_dns_cache_evictions_total{cache="answer"}'), 0)
        # A second scrape adds nothing new.
        self.assertEqual(metrics.render()[0].decode().count("skydns_dns_requests_total{"), 3)

    def test_query_type_labels_are_bounded(self) -> None:
        """A sweep of every qtype number adds no series per number: types
        Twisted does not name are counted as ``other`` (issue 17)."""
        clock = Clock()
        authority = SkyDNSAuthority(Registry(), clock, DOMAIN, [("node1", "127.0.0.1")])
        metrics = Metrics()
        server = Server(SkyDNSServerFactory(make_resolver(authority), clock, metrics=metrics))
        template = wire("rails.production.skydns.local", "A")
        for qtype in range(65536):
            server.ask(template[:-4] + struct.pack("!HH", qtype, 1))
        text = metrics.render()[0].decode()
        types = set(re.findall(r'skydns_dns_requests_total\{proto="udp",type="([^"]+)"\}', text))
        self.assertIn("other", types)
        self.assertLessEqual(len(types), 40)


class RealSocketTests(unittest.TestCase):
    """The fast UDP read loop on a real loopback socket."""

    timeout = 20

    @defer.inlineCallbacks
    def test_cached_answer_over_udp(self) -> Any:
        """A repeated question is answered from the cache by the port's read
        loop, with the client's ID and spelling; a registry change is seen."""
        registry = Registry()
        now = reactor.seconds()
        registry.apply(Register(service(1, "rails", "production", "east", "10.0.0.1", 60), now))
        authority = SkyDNSAuthority(registry, reactor, DOMAIN, [("node1", "127.0.0.1")])
        server = DNSService(make_resolver(authority), "127.0.0.1", 0, reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        cache = server.factory.answer_cache
        port = server.port
        assert cache is not None and port is not None

        def ask(name: str) -> defer.Deferred[Any]:
            message = dns.message.make_query(name, "A")
            return deferToThread(dns.query.udp, message, "127.0.0.1", port=port, timeout=5)

        first = yield ask("rails.production.skydns.local")
        second = yield ask("RAILS.production.SkyDNS.local")
        self.assertEqual(sum(cache.udp_hits.values()), 1)
        self.assertEqual(str(second.question[0].name), "RAILS.production.SkyDNS.local.")
        self.assertEqual(first.answer[0][0].address, "10.0.0.1")
        self.assertEqual(second.answer[0][0].address, "10.0.0.1")
        registry.apply(
            Register(service(2, "rails", "production", "east", "10.0.0.2", 60), reactor.seconds())
        )
        third = yield ask("rails.production.skydns.local")
        self.assertEqual(len(third.answer[0]), 2)
