"""The forwarded-answer cache: TTLs, RFC 2308 negative caching, LRU bound."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.names import dns
from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.rcache import Answer, CacheKey, ResponseCache, cache_ttl, negative_ttl


def a_record(name: bytes, ttl: int, address: str = "192.0.2.1") -> dns.RRHeader:
    return dns.RRHeader(name, dns.A, dns.IN, ttl, dns.Record_A(address, ttl))  # type: ignore[arg-type]


def soa_record(name: bytes, ttl: int, minimum: int) -> dns.RRHeader:
    payload = dns.Record_SOA(
        mname=b"ns." + name, rname=b"admin." + name, serial=1, minimum=minimum, ttl=ttl
    )
    return dns.RRHeader(name, dns.SOA, dns.IN, ttl, payload)  # type: ignore[arg-type]


def key(name: bytes = b"www.example.org", type: int = dns.A) -> CacheKey:
    return CacheKey(name, type, dns.IN)


class CacheTTLTests(SynchronousTestCase):
    def test_positive_uses_minimum_answer_ttl(self) -> None:
        """A positive answer is cached for the smallest TTL in its answer section."""
        answer = Answer(dns.OK, (a_record(b"x", 300), a_record(b"x", 60, "192.0.2.2")))
        self.assertEqual(cache_ttl(answer), 60)

    def test_positive_capped(self) -> None:
        """A huge upstream TTL is capped at max_ttl."""
        self.assertEqual(cache_ttl(Answer(dns.OK, (a_record(b"x", 10**6),)), max_ttl=3600), 3600)

    def test_negative_ttl_is_min_of_soa_ttl_and_minimum(self) -> None:
        """RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM)."""
        self.assertEqual(
            negative_ttl(Answer(dns.ENAME, authority=(soa_record(b"org", 900, 120),))), 120
        )
        self.assertEqual(
            negative_ttl(Answer(dns.ENAME, authority=(soa_record(b"org", 30, 120),))), 30
        )

    def test_nodata_is_negative(self) -> None:
        """NOERROR without answers (NODATA) follows the negative rules too."""
        self.assertEqual(cache_ttl(Answer(dns.OK, authority=(soa_record(b"org", 50, 70),))), 50)

    def test_negative_without_soa_not_cached(self) -> None:
        """RFC 2308 §5: a negative answer without a SOA is not cached."""
        self.assertEqual(cache_ttl(Answer(dns.ENAME)), 0)
        self.assertEqual(cache_ttl(Answer(dns.OK)), 0)

    def test_cname_to_nxdomain_bounded_by_cname_ttl(self) -> None:
        """An NXDOMAIN reached through a CNAME is not kept longer than the CNAME."""
        payload = dns.Record_CNAME(b"b", 10)
        cname = dns.RRHeader(b"a", dns.CNAME, dns.IN, 10, payload)  # type: ignore[arg-type]
        answer = Answer(dns.ENAME, (cname,), (soa_record(b"org", 900, 600),))
        self.assertEqual(cache_ttl(answer), 10)

    def test_errors_not_cached(self) -> None:
        """SERVFAIL, REFUSED and FORMERR are never cached."""
        for rcode in (dns.ESERVER, dns.EREFUSED, dns.EFORMAT, dns.ENOTIMP):
            answer = Answer(rcode, (a_record(b"x", 300),), (soa_record(b"org", 900, 600),))
            self.assertEqual(cache_ttl(answer), 0, rcode)


class ResponseCacheTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.cache = ResponseCache(self.clock, max_entries=3)

    def test_hit_counts_ttl_down(self) -> None:
        """A cached answer is served with its TTLs lowered by the time spent cached."""
        self.cache.put(key(), Answer(dns.OK, (a_record(b"www.example.org", 100),)))
        self.clock.advance(30.5)
        answer = self.cache.get(key())
        assert answer is not None
        self.assertEqual([r.ttl for r in answer.answers], [70])
        payload = answer.answers[0].payload
        assert isinstance(payload, dns.Record_A)
        self.assertEqual(payload.dottedQuad(), "192.0.2.1")
        self.assertEqual((self.cache.hits, self.cache.misses), (1, 0))

    def test_expires_after_ttl(self) -> None:
        """At TTL seconds after storing, the entry is gone and a lookup is a miss."""
        self.cache.put(key(), Answer(dns.OK, (a_record(b"www.example.org", 100),)))
        self.clock.advance(99.9)
        self.assertIsNotNone(self.cache.get(key()))
        self.clock.advance(0.1)
        self.assertIsNone(self.cache.get(key()))
        self.assertEqual((self.cache.hits, self.cache.misses), (1, 1))
        self.assertEqual(len(self.cache), 0)

    def test_negative_answer_cached_and_expires(self) -> None:
        """An NXDOMAIN with SOA is served from cache until its negative TTL runs
        out, its SOA's TTL counting down from the negative TTL (RFC 2308 §5)."""
        nx = Answer(dns.ENAME, authority=(soa_record(b"example.org", 3600, 60),))
        self.assertEqual(self.cache.put(key(), nx), 60)
        self.clock.advance(59)
        cached = self.cache.get(key())
        assert cached is not None
        self.assertEqual(cached.rcode, dns.ENAME)
        self.assertEqual([r.ttl for r in cached.authority], [60 - 59])
        self.clock.advance(1)
        self.assertIsNone(self.cache.get(key()))

    def test_servfail_not_stored(self) -> None:
        """put() of a SERVFAIL stores nothing."""
        self.assertEqual(self.cache.put(key(), Answer(dns.ESERVER)), 0)
        self.assertIsNone(self.cache.get(key()))

    def test_key_is_case_insensitive(self) -> None:
        """Questions differing only in letter case share an entry."""
        self.cache.put(
            CacheKey.for_query(dns.Query(b"WWW.Example.ORG", dns.A)),
            Answer(dns.OK, (a_record(b"www.example.org", 100),)),
        )
        self.assertIsNotNone(self.cache.get(CacheKey.for_query(dns.Query(b"www.example.org"))))
        self.assertIsNone(self.cache.get(CacheKey.for_query(dns.Query(b"www.example.org"), True)))

    def test_lru_bound(self) -> None:
        """Beyond max_entries the least recently used entry is dropped."""
        for i in range(3):
            self.cache.put(key(b"n%d" % i), Answer(dns.OK, (a_record(b"n", 100),)))
        self.assertIsNotNone(self.cache.get(key(b"n0")))  # n0 is now most recent
        self.cache.put(key(b"n3"), Answer(dns.OK, (a_record(b"n", 100),)))
        self.assertEqual(len(self.cache), 3)
        self.assertEqual(self.cache.evictions, 1)
        self.assertIsNone(self.cache.get(key(b"n1")))
        for name in (b"n0", b"n2", b"n3"):
            self.assertIsNotNone(self.cache.get(key(name)), name)

    def test_size_zero_disables(self) -> None:
        """A cache of size 0 stores nothing."""
        cache = ResponseCache(self.clock, max_entries=0)
        cache.put(key(), Answer(dns.OK, (a_record(b"x", 100),)))
        self.assertEqual(len(cache), 0)

    def test_negative_size_rejected(self) -> None:
        """A negative size is a ValueError naming the value."""
        with self.assertRaisesRegex(ValueError, "-1"):
            ResponseCache(self.clock, max_entries=-1)

    def test_from_message_drops_opt(self) -> None:
        """Answer.from_message keeps the sections but not the hop-by-hop OPT record."""
        message = dns.Message(rCode=dns.OK)
        message.answers = [a_record(b"x", 5)]
        message.additional = [a_record(b"y", 5), dns._OPTHeader()]  # type: ignore[list-item]
        answer = Answer.from_message(message)
        self.assertEqual([r.type for r in answer.additional], [dns.A])
        self.assertEqual(len(answer.answers), 1)
