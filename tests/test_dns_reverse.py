"""Tests for skydns.dns.reverse: PTR answers for registered addresses."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.names import dns, error, resolve
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from skydns.commands import Register
from skydns.dns.authority import SkyDNSAuthority
from skydns.dns.reverse import ReverseResolver, address_of
from skydns.names import Service
from skydns.registry import Registry


def make_service(uuid: str, host: str, ttl: int = 30, **fields: Any) -> Service:
    values: dict[str, Any] = {
        "name": "rails",
        "environment": "production",
        "region": "east",
        "version": "1.0.1",
        "host": host,
        "port": 8080,
        "ttl": ttl,
    }
    values.update(fields)
    return Service(uuid=uuid, **values)


class AddressOfTests(SynchronousTestCase):
    def test_ipv4_and_ipv6_names(self) -> None:
        """A full in-addr.arpa or ip6.arpa name spells its address, in any case,
        with or without the final dot."""
        self.assertEqual(address_of(b"4.3.2.10.in-addr.arpa"), ipaddress.ip_address("10.2.3.4"))
        self.assertEqual(address_of(b"4.3.2.10.IN-ADDR.ARPA."), ipaddress.ip_address("10.2.3.4"))
        six = ipaddress.ip_address("2001:db8::1")
        name = six.reverse_pointer.upper().encode()
        self.assertEqual(address_of(name), six)

    def test_other_names_are_not_addresses(self) -> None:
        """Partial, over-long or malformed reverse names and ordinary names spell nothing."""
        for name in [
            b"3.2.10.in-addr.arpa",
            b"5.4.3.2.10.in-addr.arpa",
            b"256.3.2.10.in-addr.arpa",
            b"04.3.2.10.in-addr.arpa",
            b"x.3.2.10.in-addr.arpa",
            b"-1.3.2.10.in-addr.arpa",
            b"in-addr.arpa",
            b"1.0.ip6.arpa",
            b"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            b"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            b"www.example.org",
            b"4.3.2.10.in-addr.arpa.example",
        ]:
            self.assertIsNone(address_of(name), name)

    @given(st.ip_addresses())
    def test_round_trip(self, address: Any) -> None:
        """Every address's reverse pointer name reads back as that address."""
        self.assertEqual(address_of(address.reverse_pointer.encode()), address)

    @given(st.binary(max_size=80))
    def test_never_raises(self, name: bytes) -> None:
        """Any bytes at all give an address or None, never an exception."""
        address_of(name)
        address_of(name + b".in-addr.arpa")
        address_of(name + b".ip6.arpa")


class ReverseResolverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.registry = Registry()
        self.resolver = ReverseResolver(self.registry, self.clock, "SkyDNS.local.")

    def register(self, uuid: str, host: str, **fields: Any) -> None:
        result = self.registry.apply(
            Register(make_service(uuid, host, **fields), self.clock.seconds())
        )
        self.assertEqual(result.status, "ok")

    def ptr(self, name: str, qtype: int = dns.PTR) -> list[Any]:
        answers, authority, additional = self.successResultOf(
            self.resolver.query(dns.Query(name, qtype))
        )
        self.assertEqual((authority, additional), ([], []))
        return answers

    def assert_passed_on(self, name: str, qtype: int = dns.PTR) -> None:
        failure = self.failureResultOf(self.resolver.query(dns.Query(name, qtype)))
        self.assertIs(type(failure.value), error.DomainError)

    def test_provides_iresolver(self) -> None:
        from twisted.internet.interfaces import IResolver

        verifyObject(IResolver, self.resolver)

    def test_ptr_for_registered_ipv4(self) -> None:
        """PTR for a live instance's address answers <uuid>.<domain>, AA, TTL = lease left."""
        self.register("web1", "10.2.3.4", ttl=30)
        self.clock.advance(10.5)
        (record,) = self.ptr("4.3.2.10.in-addr.arpa")
        self.assertEqual(record.type, dns.PTR)
        self.assertEqual(record.name.name, b"4.3.2.10.in-addr.arpa")
        self.assertEqual(record.payload.name.name, b"web1.skydns.local")
        self.assertEqual(record.ttl, 19)
        self.assertEqual(record.payload.ttl, 19)
        self.assertTrue(record.auth)

    def test_ptr_for_registered_ipv6(self) -> None:
        """An IPv6 host is found through its ip6.arpa name, whatever way it was written."""
        self.register("v6", "2001:DB8:0:0::7")
        name = ipaddress.ip_address("2001:db8::7").reverse_pointer
        (record,) = self.ptr(name)
        self.assertEqual(record.payload.name.name, b"v6.skydns.local")

    def test_one_ptr_per_instance_with_the_address(self) -> None:
        """Instances sharing an address each get a PTR record, in UUID order."""
        self.register("b", "10.0.0.9", ttl=60)
        self.register("a", "10.0.0.9", ttl=20, name="db")
        self.register("c", "10.0.0.8")
        records = self.ptr("9.0.0.10.in-addr.arpa")
        self.assertEqual(
            [(r.payload.name.name, r.ttl) for r in records],
            [(b"a.skydns.local", 20), (b"b.skydns.local", 60)],
        )

    def test_any_question_gets_the_ptr_records(self) -> None:
        self.register("web1", "10.2.3.4")
        (record,) = self.ptr("4.3.2.10.in-addr.arpa", dns.ALL_RECORDS)
        self.assertEqual(record.type, dns.PTR)

    def test_expired_instance_is_not_answered(self) -> None:
        """Once the lease has run out the name is passed on (to be forwarded)."""
        self.register("web1", "10.2.3.4", ttl=30)
        self.clock.advance(30)
        self.assert_passed_on("4.3.2.10.in-addr.arpa")

    def test_other_names_and_types_are_passed_on(self) -> None:
        """Unregistered addresses, partial reverse names, other types and names
        outside the reverse trees fail with a bare DomainError."""
        self.register("web1", "10.2.3.4")
        self.register("named", "web1.example.com")
        self.assert_passed_on("5.3.2.10.in-addr.arpa")
        self.assert_passed_on("3.2.10.in-addr.arpa")
        self.assert_passed_on("4.3.2.10.in-addr.arpa", dns.TXT)
        self.assert_passed_on("4.3.2.10.in-addr.arpa", dns.A)
        self.assert_passed_on("www.example.org")
        self.assert_passed_on("web1.skydns.local")


class ChainTests(SynchronousTestCase):
    """The authority, then reverse lookups, then the forwarder: what the server sees."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = Registry()
        authority = SkyDNSAuthority(self.registry, self.clock, "skydns.local")
        reverse = ReverseResolver(self.registry, self.clock, "skydns.local")
        self.chain = resolve.ResolverChain([authority, reverse])
        self.registry.apply(Register(make_service("web1", "10.2.3.4"), 0))

    def test_chain_answers_both(self) -> None:
        answers, _, _ = self.successResultOf(
            self.chain.query(dns.Query("4.3.2.10.in-addr.arpa", dns.PTR))
        )
        self.assertEqual([r.payload.name.name for r in answers], [b"web1.skydns.local"])
        answers, _, _ = self.successResultOf(
            self.chain.query(dns.Query("web1.skydns.local", dns.A))
        )
        self.assertEqual([r.type for r in answers], [dns.A])

    def test_unknown_reverse_name_fails_bare(self) -> None:
        """An unregistered address leaves the chain as a bare DomainError, which
        the server hands to the forwarder (see skydns.dns.server)."""
        failure = self.failureResultOf(
            self.chain.query(dns.Query("5.3.2.10.in-addr.arpa", dns.PTR))
        )
        self.assertIs(type(failure.value), error.DomainError)
