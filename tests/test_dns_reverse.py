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
from skydns.dns.resolution import NameNotFound
from skydns.dns.reverse import ReverseResolver, address_of, network_of, parse_reverse_zone
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


NETWORKS = st.ip_addresses().flatmap(lambda address: st.integers(0, address.max_prefixlen).map(
    lambda prefix: ipaddress.ip_network((address, prefix), strict=False)))  # fmt: skip


class NetworkOfTests(SynchronousTestCase):
    def test_partial_names_spell_networks(self) -> None:
        self.assertEqual(network_of(b"1.0.10.in-addr.arpa"), ipaddress.ip_network("10.0.1.0/24"))
        self.assertEqual(network_of(b"IN-ADDR.ARPA."), ipaddress.ip_network("0.0.0.0/0"))
        self.assertEqual(network_of(b"8.b.d.0.1.0.0.2.ip6.arpa"),
                         ipaddress.ip_network("2001:db8::/32"))  # fmt: skip
        self.assertIsNone(network_of(b"x.10.in-addr.arpa"))
        self.assertIsNone(network_of(b"10.in-addr.arpa.example"))

    @given(NETWORKS)
    def test_round_trip_on_label_boundaries(self, network: Any) -> None:
        """A network on a label boundary (a multiple of 8 bits for IPv4, 4
        for IPv6) reads back from its reverse name."""
        step = 8 if network.version == 4 else 4
        network = network.supernet(new_prefix=network.prefixlen // step * step)
        labels = network.network_address.reverse_pointer.split(".")
        name = ".".join(labels[len(labels) - 2 - network.prefixlen // step:])
        self.assertEqual(network_of(name.encode()), network)

    def test_reverse_zone_option(self) -> None:
        self.assertEqual(parse_reverse_zone(" 1.0.10.In-Addr.Arpa. "),
                         (b"1.0.10.in-addr.arpa", ipaddress.ip_network("10.0.1.0/24")))  # fmt: skip
        for bad in ["skydns.local", "4.1.0.10.in-addr.arpa", "256.in-addr.arpa", ""]:
            with self.assertRaises(ValueError):
                parse_reverse_zone(bad)


class ReverseZoneTests(SynchronousTestCase):
    """A --reverse-zone is SkyDNS's whole: nothing in it is passed on."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.registry = Registry()
        authority = SkyDNSAuthority(self.registry, self.clock, "skydns.local",
                                    [("node1", "127.0.0.1")], negative_ttl=7)  # fmt: skip
        zones = [parse_reverse_zone("10.in-addr.arpa"), parse_reverse_zone("0.10.in-addr.arpa")]
        self.resolver = ReverseResolver(self.registry, self.clock, "skydns.local", zones,
                                        authority.soa, authority.nameservers)  # fmt: skip
        self.registry.apply(Register(make_service("web1", "10.0.1.8"), self.clock.seconds()))

    def sections(self, name: str, qtype: int) -> Any:
        return self.successResultOf(self.resolver.query(dns.Query(name, qtype)))

    def assert_nodata(self, name: str, qtype: int, zone: bytes) -> None:
        answers, (soa,), additional = self.sections(name, qtype)
        self.assertEqual((answers, additional), ([], []))
        self.assertEqual((soa.type, soa.name.name, soa.ttl), (dns.SOA, zone, 7))

    def test_ptr_and_denials(self) -> None:
        (record,) = self.sections("8.1.0.10.in-addr.arpa", dns.PTR)[0]
        self.assertEqual(record.payload.name.name, b"web1.skydns.local")
        # The longest zone holds the name; the address has no TXT.
        self.assert_nodata("8.1.0.10.in-addr.arpa", dns.TXT, b"0.10.in-addr.arpa")
        # Empty non-terminals above a registered address exist.
        self.assert_nodata("1.0.10.in-addr.arpa", dns.PTR, b"0.10.in-addr.arpa")
        failure = self.failureResultOf(self.resolver.query(dns.Query("9.1.0.10.in-addr.arpa")))
        self.assertIsInstance(failure.value, NameNotFound)
        self.assertEqual(failure.value.authority[0].name.name, b"0.10.in-addr.arpa")
        for missing in ["2.0.10.in-addr.arpa", "1.10.in-addr.arpa", "x.0.10.in-addr.arpa"]:
            self.assertIsInstance(
                self.failureResultOf(self.resolver.query(dns.Query(missing))).value,
                NameNotFound, missing)  # fmt: skip

    def test_apex(self) -> None:
        (soa,) = self.sections("10.in-addr.arpa", dns.SOA)[0]
        self.assertEqual(soa.payload.mname.name, b"node1.ns.dns.skydns.local")
        (ns,) = self.sections("10.in-addr.arpa", dns.NS)[0]
        self.assertEqual(ns.payload.name.name, b"node1.ns.dns.skydns.local")
        self.assert_nodata("10.in-addr.arpa", dns.PTR, b"10.in-addr.arpa")

    def test_drained_and_gone(self) -> None:
        """A drained instance's PTR is gone; once removed, so are the names above it."""
        from skydns.commands import Drain, Unregister

        self.registry.apply(Drain("web1", True, self.clock.seconds()))
        self.assertIsInstance(
            self.failureResultOf(self.resolver.query(dns.Query("8.1.0.10.in-addr.arpa"))).value,
            NameNotFound)  # fmt: skip
        self.registry.apply(Unregister("web1", self.clock.seconds()))
        self.assertIsInstance(
            self.failureResultOf(self.resolver.query(dns.Query("1.0.10.in-addr.arpa"))).value,
            NameNotFound)  # fmt: skip

    def test_outside_the_zones_as_before(self) -> None:
        self.registry.apply(Register(make_service("web2", "192.168.0.1"), self.clock.seconds()))
        self.sections("1.0.168.192.in-addr.arpa", dns.PTR)
        failure = self.failureResultOf(self.resolver.query(dns.Query("2.0.168.192.in-addr.arpa")))
        self.assertIs(type(failure.value), error.DomainError)


class AddressIndexTests(SynchronousTestCase):
    @given(st.lists(st.ip_addresses(), max_size=20), NETWORKS)
    def test_any_in_agrees_with_a_scan(self, addresses: Any, network: Any) -> None:
        from skydns.registry.addresses import AddressIndex

        index = AddressIndex()
        for i, address in enumerate(addresses):
            index.add(str(i), str(address))
        for i, address in enumerate(addresses[::2]):
            index.remove(str(2 * i), str(address))
        held = [a for i, a in enumerate(addresses) if i % 2]
        self.assertEqual(index.any_in(network), any(a in network for a in held))
