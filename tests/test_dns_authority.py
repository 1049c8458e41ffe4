"""Tests for skydns.dns.authority: what the domain answers (SPEC.md §3)."""

from __future__ import annotations

from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.names import dns, error
from twisted.names.common import ResolverBase
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from skydns.commands import Drain, Register, Renew, Unregister
from skydns.dns.authority import (
    DEFAULT_NEGATIVE_TTL,
    NS_TTL,
    NameNotFound,
    QueryRefused,
    SkyDNSAuthority,
    make_resolver,
)
from skydns.dns.nameservers import ns_label
from skydns.names import Service
from skydns.patterns import SKYDNS1_ORDER, parse_pattern
from skydns.registry import Registry

#: Answer, authority, additional (records typed loosely: payloads vary).
Sections = tuple[list[Any], list[Any], list[Any]]


def make_service(uuid: str, **fields: Any) -> Service:
    values: dict[str, Any] = {
        "name": "rails",
        "environment": "production",
        "region": "east",
        "version": "1.0.1",
        "host": "10.0.0.1",
        "port": 8080,
        "ttl": 30,
    }
    values.update(fields)
    return Service(uuid=uuid, **values)


def srv(records: list[Any]) -> list[tuple[int, int, int, str]]:
    """(priority, weight, port, target) of each SRV record, in order."""
    return [
        (r.payload.priority, r.payload.weight, r.payload.port, r.payload.target.name.decode())
        for r in records
        if r.type == dns.SRV
    ]


def addresses(records: list[Any]) -> list[tuple[str, int, str]]:
    """(name, type, address) of each A/AAAA record."""
    return sorted(
        (r.name.name.decode(), r.type, r.payload.dottedQuad())
        if r.type == dns.A
        else (r.name.name.decode(), r.type, _aaaa(r))
        for r in records
        if r.type in (dns.A, dns.AAAA)
    )


def _aaaa(record: Any) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(record.payload.address))


class AuthorityTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.registry = Registry()
        self.nameservers = [("node1", "192.0.2.1"), ("Node_2", "2001:db8::2")]
        self.authority = SkyDNSAuthority(
            self.registry, self.clock, "skydns.local", self.nameservers
        )

    def register(self, uuid: str, **fields: Any) -> Service:
        service = make_service(uuid, **fields)
        result = self.registry.apply(Register(service, self.clock.seconds()))
        self.assertEqual(result.status, "ok")
        return service

    def lookup(self, name: str, qtype: int) -> Sections:
        d = self.authority.query(dns.Query(name, qtype))
        result: Sections = self.successResultOf(d)
        return result

    def nxdomain(self, name: str, qtype: int = dns.SRV) -> NameNotFound:
        d = self.authority.query(dns.Query(name, qtype))
        failure: Failure = self.failureResultOf(d, NameNotFound)
        value = failure.value
        assert isinstance(value, NameNotFound)
        return value

    def assert_soa(self, records: list[Any]) -> None:
        self.assertEqual(len(records), 1)
        (soa,) = records
        self.assertEqual(soa.type, dns.SOA)
        self.assertEqual(soa.name.name, b"skydns.local")
        self.assertEqual(soa.ttl, DEFAULT_NEGATIVE_TTL)
        self.assertTrue(soa.auth)

    def assert_nodata(self, name: str, qtype: int) -> None:
        answers, authority, additional = self.lookup(name, qtype)
        self.assertEqual((answers, additional), ([], []))
        self.assert_soa(authority)


class SRVTests(AuthorityTestCase):
    def test_one_record_per_match_with_equal_weights(self) -> None:
        """Each matching instance gets an SRV record, priority 10 and weight
        floor(100 / n); IP hosts are targeted as <uuid>.<domain> with glue."""
        for uuid, host in (("a1", "10.0.0.1"), ("b2", "10.0.0.2"), ("c3", "2001:db8::3")):
            self.register(uuid, host=host)
        answers, authority, additional = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual(
            srv(answers),
            [
                (10, 33, 8080, "a1.skydns.local"),
                (10, 33, 8080, "b2.skydns.local"),
                (10, 33, 8080, "c3.skydns.local"),
            ],
        )
        self.assertTrue(all(r.auth for r in answers + additional))
        self.assertEqual({r.name.name for r in answers}, {b"rails.production.skydns.local"})
        self.assertEqual(authority, [])
        self.assertEqual(
            addresses(additional),
            [
                ("a1.skydns.local", dns.A, "10.0.0.1"),
                ("b2.skydns.local", dns.A, "10.0.0.2"),
                ("c3.skydns.local", dns.AAAA, "2001:db8::3"),
            ],
        )

    def test_service_priority_and_weight(self) -> None:
        """A service's own Priority and Weight replace the defaults."""
        self.register("a1", priority=5, weight=70)
        self.register("b2", weight=0)
        self.register("c3")
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual([(p, w) for p, w, _, _ in srv(answers)], [(5, 70), (10, 0), (10, 33)])

    def test_host_name_target(self) -> None:
        """A host-name instance is targeted at its host, with no glue."""
        self.register("a1", host="Web1.Example.com", port=443)
        answers, _, additional = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 443, "web1.example.com")])
        self.assertEqual(additional, [])

    def test_region_failover(self) -> None:
        """Naming a region puts the other regions' instances after it, with
        priority 20 and weight floor(100 / m)."""
        self.register("e1", region="east", host="10.0.0.1")
        self.register("e2", region="east", host="10.0.0.2")
        self.register("w1", region="west", host="10.0.1.1")
        self.register("w2", region="west", host="10.0.1.2")
        self.register("n1", region="north", host="10.0.2.1")
        self.register("x1", region="west", name="other", host="10.0.9.9")
        answers, _, additional = self.lookup("east.rails.production.skydns.local", dns.SRV)
        self.assertEqual(
            srv(answers),
            [
                (10, 50, 8080, "e1.skydns.local"),
                (10, 50, 8080, "e2.skydns.local"),
                (20, 33, 8080, "n1.skydns.local"),
                (20, 33, 8080, "w1.skydns.local"),
                (20, 33, 8080, "w2.skydns.local"),
            ],
        )
        self.assertEqual(len(additional), 5)

    def test_failover_when_region_has_none(self) -> None:
        """A named region with no instances still answers SRV from the others
        (priority 20); the name exists, so A there is NODATA, not NXDOMAIN."""
        self.register("w1", region="west")
        answers, _, _ = self.lookup("south.rails.production.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(20, 100, 8080, "w1.skydns.local")])
        self.assert_nodata("south.rails.production.skydns.local", dns.A)

    def test_failover_keeps_other_labels(self) -> None:
        """Failover only relaxes the region: a named version still filters."""
        self.register("e1", region="east", version="1.0.1")
        self.register("w1", region="west", version="1.0.1")
        self.register("w2", region="west", version="2.0")
        answers, _, _ = self.lookup("1-0-1.east.rails.production.skydns.local", dns.SRV)
        self.assertEqual(
            srv(answers), [(10, 100, 8080, "e1.skydns.local"), (20, 100, 8080, "w1.skydns.local")]
        )

    def test_no_failover_with_wildcard_region(self) -> None:
        """A wildcard or omitted region has no failover group."""
        self.register("e1", region="east")
        self.register("w1", region="west")
        for name in (
            "rails.production.skydns.local",
            "*.rails.production.skydns.local",
            "1-0-1.any.rails.production.skydns.local",
        ):
            answers, _, _ = self.lookup(name, dns.SRV)
            self.assertEqual([p for p, _, _, _ in srv(answers)], [10, 10], name)

    def test_wildcards_in_middle_positions(self) -> None:
        """`*` and `any` match anything in any position, not just the left."""
        self.register("a1", name="rails", version="1.0.1")
        self.register("b2", name="django", version="1.0.1")
        self.register("c3", name="django", version="2.0")
        answers, _, _ = self.lookup("1-0-1.*.any.production.skydns.local", dns.SRV)
        self.assertEqual([t for _, _, _, t in srv(answers)], ["a1.skydns.local", "b2.skydns.local"])
        answers, _, _ = self.lookup("10-0-0-1.*.east.django.*.skydns.local", dns.SRV)
        self.assertEqual([t for _, _, _, t in srv(answers)], ["b2.skydns.local", "c3.skydns.local"])

    def test_full_name_with_uuid(self) -> None:
        """Six labels (uuid included) name one instance."""
        self.register("a1", host="web1.example.com")
        self.register("b2", host="web1.example.com")
        name = "b2.web1-example-com.1-0-1.east.rails.production.skydns.local"
        answers, _, _ = self.lookup(name, dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 8080, "web1.example.com")])

    def test_case_insensitive(self) -> None:
        """Query names match whatever their case; answers echo the query name."""
        self.register("a1", name="Rails", region="East")
        name = "EAST.rails.PRODUCTION.SkyDNS.Local"
        answers, _, _ = self.lookup(name, dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 8080, "a1.skydns.local")])
        self.assertEqual(answers[0].name.name, name.encode())


class AddressTests(AuthorityTestCase):
    def test_a_and_aaaa(self) -> None:
        """A gives the IPv4 hosts, AAAA the IPv6 hosts; host names give neither."""
        self.register("a1", host="10.0.0.1")
        self.register("b2", host="2001:db8::2")
        self.register("c3", host="web1.example.com")
        name = "rails.production.skydns.local"
        answers, authority, _ = self.lookup(name, dns.A)
        self.assertEqual(addresses(answers), [(name, dns.A, "10.0.0.1")])
        self.assertEqual(authority, [])
        self.assertTrue(answers[0].auth)
        answers, _, _ = self.lookup(name, dns.AAAA)
        self.assertEqual(addresses(answers), [(name, dns.AAAA, "2001:db8::2")])

    def test_no_failover_for_addresses(self) -> None:
        """A/AAAA are exact: other regions are not added."""
        self.register("e1", region="east", host="10.0.0.1")
        self.register("w1", region="west", host="10.0.0.2")
        answers, _, _ = self.lookup("east.rails.production.skydns.local", dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["10.0.0.1"])

    def test_same_address_once(self) -> None:
        """Two instances on one address give one A record, with the shorter TTL."""
        self.register("a1", host="10.0.0.1", ttl=60)
        self.register("b2", host="10.0.0.1", ttl=20)
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.A)
        self.assertEqual(len(answers), 1)
        self.assertEqual(answers[0].ttl, 20)

    def test_ipv4_only_is_nodata_for_aaaa(self) -> None:
        """An existing name without IPv6 hosts answers AAAA with NODATA."""
        self.register("a1", host="10.0.0.1")
        self.assert_nodata("rails.production.skydns.local", dns.AAAA)


class UUIDNameTests(AuthorityTestCase):
    def test_uuid_address(self) -> None:
        """<uuid>.<domain> resolves to the instance's address (any case)."""
        self.register("A1b2", host="10.0.0.7")
        self.register("c3", host="2001:db8::9")
        answers, _, _ = self.lookup("a1B2.skydns.local", dns.A)
        self.assertEqual(addresses(answers), [("a1B2.skydns.local", dns.A, "10.0.0.7")])
        answers, _, _ = self.lookup("c3.skydns.local", dns.AAAA)
        self.assertEqual(addresses(answers), [("c3.skydns.local", dns.AAAA, "2001:db8::9")])
        self.assert_nodata("c3.skydns.local", dns.A)

    def test_srv_target_resolves(self) -> None:
        """The SRV target of an IP host is itself resolvable."""
        self.register("a1", host="10.0.0.7")
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.SRV)
        target = answers[0].payload.target.name.decode()
        answers, _, _ = self.lookup(target, dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["10.0.0.7"])

    def test_srv_target_in_each_authoritys_domain(self) -> None:
        """Two authorities over one registry (the same instance objects)
        each target IP hosts under their own domain."""
        self.register("a1", host="10.0.0.7")
        other = SkyDNSAuthority(self.registry, self.clock, "other.example")
        for authority, domain in ((self.authority, "skydns.local"), (other, "other.example")):
            d = authority.query(dns.Query(f"rails.production.{domain}", dns.SRV))
            answers, _, additional = self.successResultOf(d)
            self.assertEqual(srv(answers), [(10, 100, 8080, f"a1.{domain}")])
            self.assertEqual(addresses(additional), [(f"a1.{domain}", dns.A, "10.0.0.7")])

    def test_uuid_srv(self) -> None:
        """SRV at <uuid>.<domain> gives that one instance."""
        self.register("a1", host="web1.example.com", port=9000, priority=3)
        answers, _, _ = self.lookup("a1.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(3, 100, 9000, "web1.example.com")])
        self.assert_nodata("a1.skydns.local", dns.A)

    def test_uuid_before_environment(self) -> None:
        """A single label that is a live UUID names that instance, even if
        it is also an environment; otherwise it is an environment."""
        self.register("production", environment="staging", host="10.0.0.1")
        self.register("a1", environment="production", host="10.0.0.2")
        answers, _, _ = self.lookup("production.skydns.local", dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["10.0.0.1"])
        answers, _, _ = self.lookup("staging.skydns.local", dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["10.0.0.1"])
        self.registry.apply(Unregister("production", self.clock.seconds()))
        answers, _, _ = self.lookup("production.skydns.local", dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["10.0.0.2"])


class TTLTests(AuthorityTestCase):
    def test_ttl_counts_down(self) -> None:
        """Each record's TTL is the instance's remaining lease, rounded down."""
        self.register("a1", ttl=30)
        self.clock.advance(10.5)
        answers, _, additional = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual([r.ttl for r in answers + additional], [19, 19])
        self.assertEqual(answers[0].payload.ttl, 19)
        self.registry.apply(Renew("a1", 100, self.clock.seconds()))
        self.clock.advance(0.25)
        answers, _, _ = self.lookup("a1.skydns.local", dns.A)
        self.assertEqual(answers[0].ttl, 99)

    def test_expired_instance_is_gone(self) -> None:
        """Once the lease has run out the instance's names are NXDOMAIN,
        even before the expiry command removes it."""
        self.register("a1", ttl=5)
        self.clock.advance(4.9)
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual([r.ttl for r in answers], [0])
        self.clock.advance(0.1)
        self.nxdomain("rails.production.skydns.local", dns.SRV)
        self.nxdomain("a1.skydns.local", dns.A)

    def test_no_expire_uses_ttl(self) -> None:
        """A NoExpire instance keeps its registered TTL forever."""
        self.register("a1", ttl=45, no_expire=True)
        self.clock.advance(3600)
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.A)
        self.assertEqual(answers[0].ttl, 45)


class ApexTests(AuthorityTestCase):
    def test_soa(self) -> None:
        """The apex SOA names the first nameserver; its serial follows the
        registry version, so it changes with every change."""
        answers, authority, _ = self.lookup("skydns.local", dns.SOA)
        self.assertEqual(authority, [])
        (soa,) = answers
        self.assertTrue(soa.auth)
        self.assertEqual(soa.payload.mname.name, b"node1.ns.dns.skydns.local")
        self.assertEqual(soa.payload.rname.name, b"hostmaster.skydns.local")
        self.assertEqual(soa.payload.minimum, DEFAULT_NEGATIVE_TTL)
        self.assertGreater(soa.payload.expire, soa.payload.refresh)
        self.assertGreater(soa.payload.refresh, soa.payload.retry)
        before = soa.payload.serial
        self.register("a1")
        (soa,) = self.lookup("SkyDNS.local.", dns.SOA)[0]
        self.assertEqual(soa.payload.serial, self.registry.version)
        self.assertNotEqual(soa.payload.serial, before)

    def test_ns_with_glue(self) -> None:
        """The apex NS records name every node under ns.dns.<domain>, with
        A/AAAA glue, and those names resolve."""
        answers, _, additional = self.lookup("skydns.local", dns.NS)
        self.assertEqual(
            [r.payload.name.name for r in answers],
            [b"node1.ns.dns.skydns.local", b"node-2.ns.dns.skydns.local"],
        )
        self.assertTrue(all(r.auth and r.ttl == NS_TTL for r in answers))
        self.assertEqual(
            addresses(additional),
            [
                ("node-2.ns.dns.skydns.local", dns.AAAA, "2001:db8::2"),
                ("node1.ns.dns.skydns.local", dns.A, "192.0.2.1"),
            ],
        )
        answers, _, _ = self.lookup("NODE1.ns.dns.skydns.local", dns.A)
        self.assertEqual([a for _, _, a in addresses(answers)], ["192.0.2.1"])
        self.assert_nodata("node1.ns.dns.skydns.local", dns.AAAA)
        self.assert_nodata("ns.dns.skydns.local", dns.A)
        self.assert_nodata("dns.skydns.local", dns.A)
        self.nxdomain("node3.ns.dns.skydns.local", dns.A)

    def test_nameservers_may_change(self) -> None:
        """A callable gives the current nameserver list at each query; a
        wildcard bind address gets no glue."""
        servers = [("a", "0.0.0.0")]
        authority = SkyDNSAuthority(self.registry, self.clock, "skydns.local", lambda: servers)
        answers, _, additional = self.successResultOf(authority.lookupNameservers("skydns.local"))
        self.assertEqual([r.payload.name.name for r in answers], [b"a.ns.dns.skydns.local"])
        self.assertEqual(additional, [])
        servers.append(("b", "10.1.1.1"))
        answers, _, additional = self.successResultOf(authority.lookupNameservers("skydns.local"))
        self.assertEqual(len(answers), 2)
        self.assertEqual(len(additional), 1)

    def test_apex_other_types_nodata(self) -> None:
        """The apex exists: TXT there, and SRV with nothing registered, are
        NODATA with the SOA."""
        for qtype in (dns.SRV, dns.TXT):
            self.assert_nodata("skydns.local", qtype)

    def test_apex_srv_lists_every_instance(self) -> None:
        """SRV at the apex (SkyDNS 1's GetAllServicesDNS, `skydnsctl list
        -d`) lists every live instance DNS shows, whatever its name and
        environment, weight floor(100 / n); drained and expired ones not."""
        self.register("a1", name="rails", environment="production", host="10.0.0.1")
        self.register("b2", name="web", environment="staging", host="web1.example.com")
        self.register("c3", name="db", ttl=5, host="10.0.0.3")
        self.register("d4", name="db", host="10.0.0.4")
        self.registry.apply(Drain("d4", True, self.clock.seconds()))
        answers, authority, additional = self.lookup("skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [
            (10, 33, 8080, "a1.skydns.local"), (10, 33, 8080, "web1.example.com"),
            (10, 33, 8080, "c3.skydns.local"),
        ])  # fmt: skip
        self.assertTrue(all(r.auth for r in answers))
        self.assertEqual(authority, [])
        self.assertEqual([a[0] for a in addresses(additional)],
                         ["a1.skydns.local", "c3.skydns.local"])  # fmt: skip
        self.clock.advance(6)
        answers, _, _ = self.lookup("skydns.local", dns.SRV)
        self.assertEqual(len(answers), 2)

    def test_apex_addresses_are_the_nameservers(self) -> None:
        """A and AAAA at the apex give the nodes' addresses (as SkyDNS 1
        answered), with the NS TTL."""
        answers, _, _ = self.lookup("skydns.local", dns.A)
        self.assertEqual(addresses(answers), [("skydns.local", dns.A, "192.0.2.1")])
        answers, _, _ = self.lookup("skydns.local", dns.AAAA)
        self.assertEqual(addresses(answers), [("skydns.local", dns.AAAA, "2001:db8::2")])
        self.assertEqual({r.ttl for r in answers}, {NS_TTL})

    def test_ns_label(self) -> None:
        """Node ids become one lower-case label."""
        self.assertEqual(ns_label("Node_1.example:7070"), "node-1-example-7070")
        self.assertEqual(ns_label("__"), "node")


class NegativeTests(AuthorityTestCase):
    def test_nxdomain_with_soa(self) -> None:
        """A name in the domain matching nothing is NXDOMAIN with the SOA."""
        self.register("a1")
        error_ = self.nxdomain("django.production.skydns.local")
        self.assert_soa(error_.authority)
        soa: Any = error_.authority[0].payload
        self.assertEqual(soa.serial, self.registry.version)
        self.nxdomain("nope.skydns.local", dns.A)

    def test_nodata_for_other_types(self) -> None:
        """An existing name asked for TXT or MX is NOERROR, empty, SOA."""
        self.register("a1")
        for qtype in (dns.TXT, dns.MX, dns.CNAME, dns.PTR):
            self.assert_nodata("rails.production.skydns.local", qtype)

    def test_too_many_labels(self) -> None:
        """More than six labels before the domain match nothing."""
        self.register("a1")
        self.nxdomain("x.a1.10-0-0-1.1-0-1.east.rails.production.skydns.local")
        self.nxdomain("*.*.*.*.*.*.*.skydns.local")

    def test_any(self) -> None:
        """ANY gets every record the name has."""
        self.register("a1", host="10.0.0.1")
        self.register("b2", host="2001:db8::1")
        answers, _, additional = self.lookup("rails.production.skydns.local", dns.ALL_RECORDS)
        self.assertEqual(
            sorted(r.type for r in answers), sorted([dns.A, dns.AAAA, dns.SRV, dns.SRV])
        )
        self.assertEqual(len(additional), 2)
        answers, _, _ = self.lookup("skydns.local", dns.ALL_RECORDS)
        self.assertEqual(sorted(r.type for r in answers),
                         sorted([dns.NS, dns.NS, dns.SOA, dns.SRV, dns.SRV, dns.A, dns.AAAA]))

    def test_zone_transfer_refused(self) -> None:
        """AXFR of the domain is refused, not answered or forwarded."""
        d = self.authority.query(dns.Query("skydns.local", dns.AXFR))
        self.failureResultOf(d, QueryRefused)

    def test_outside_domain(self) -> None:
        """Names outside the domain fail with a plain DomainError, so a
        chain asks its next resolver."""
        for name in ("example.com", "xskydns.local", "local"):
            failure = self.failureResultOf(
                self.authority.query(dns.Query(name, dns.A)), error.DomainError
            )
            self.assertIs(type(failure.value), error.DomainError)


class FakeForwarder(ResolverBase):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[bytes] = []

    def _lookup(self, name: bytes, cls: int, type: int, timeout: Optional[object] = None) -> Any:
        from twisted.internet.defer import succeed

        self.asked.append(name)
        payload: Any = dns.Record_A("192.0.2.9", 5)
        record = dns.RRHeader(name, dns.A, dns.IN, 5, payload)
        return succeed(([record], [], []))


class ResolverChainTests(AuthorityTestCase):
    def test_provides_iresolver(self) -> None:
        """The authority is a complete IResolver."""
        from twisted.internet.interfaces import IResolver

        self.assertTrue(verifyObject(IResolver, self.authority))

    def test_without_forwarder(self) -> None:
        """With no forwarder an outside name fails with a bare DomainError."""
        chain = make_resolver(self.authority)
        failure = self.failureResultOf(chain.lookupAddress("example.com"), error.DomainError)
        self.assertIs(type(failure.value), error.DomainError)

    def test_forwarder_gets_only_outside_names(self) -> None:
        """The forwarder answers outside names; the domain's NXDOMAIN stays ours."""
        forwarder = FakeForwarder()
        chain = make_resolver(self.authority, forwarder)
        answers, _, _ = self.successResultOf(chain.lookupAddress("example.com"))
        self.assertEqual(answers[0].payload.dottedQuad(), "192.0.2.9")
        self.failureResultOf(chain.lookupAddress("nope.skydns.local"), NameNotFound)
        self.assertEqual(forwarder.asked, [b"example.com"])


LABEL_CHOICES = [
    "*",
    "any",
    "u1",
    "u2",
    "u3",
    "10-0-0-1",
    "web-example-com",
    "1-0",
    "2-0",
    "east",
    "west",
    "rails",
    "django",
    "production",
    "staging",
    "nothing",
]
POPULATION = [
    make_service("u1", host="10.0.0.1", version="1.0", region="east"),
    make_service("u2", host="web.example.com", version="2.0", region="west"),
    make_service("u3", host="10.0.0.1", version="1.0", region="west", name="django"),
]


class ModelTests(SynchronousTestCase):
    """SRV answers agree with a brute-force reading of SPEC.md §1 and §3."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(LABEL_CHOICES), min_size=1, max_size=7), st.booleans())
    def test_srv_matches_model(self, labels: list[str], upper: bool) -> None:
        clock = Clock()
        registry = Registry()
        for service in POPULATION:
            registry.apply(Register(service, clock.seconds()))
        authority = SkyDNSAuthority(registry, clock, "skydns.local", [])
        name = ".".join(labels + ["skydns", "local"])
        if upper:
            name = name.upper()
        if len(labels) == 1 and labels[0] in ("u1", "u2", "u3"):
            primary = [s for s in POPULATION if s.uuid == labels[0]]
            failover: list[Service] = []
        elif len(labels) > 6:
            primary = failover = []
        else:
            pattern = parse_pattern(labels)
            primary = [s for s in POPULATION if pattern.matches(s)]
            loose = pattern.without_region()
            failover = [
                s
                for s in POPULATION
                if pattern.region is not None
                and loose.matches(s)
                and s.region.lower() != pattern.region
            ]
        d = authority.query(dns.Query(name, dns.SRV))
        if not primary and not failover:
            self.failureResultOf(d, NameNotFound)
            return
        answers, authority_section, _ = self.successResultOf(d)
        expected = [(10, 100 // len(primary)) for _ in primary] + [
            (20, 100 // len(failover)) for _ in failover
        ]
        self.assertEqual([(p, w) for p, w, _, _ in srv(answers)], expected)
        self.assertEqual(authority_section, [])


class NegativeTTLTests(SynchronousTestCase):
    """``--negative-ttl``: the SOA's MINIMUM and TTL, so NXDOMAIN and NODATA
    are cached that long (RFC 2308), 5 s by default."""

    def test_nxdomain_and_the_soa_carry_it(self) -> None:
        authority = SkyDNSAuthority(Registry(), Clock(), "skydns.local", negative_ttl=7)
        failure = self.failureResultOf(
            authority.query(dns.Query("nope.production.skydns.local", dns.SRV)), NameNotFound
        )
        (soa,) = failure.value.authority
        self.assertEqual((soa.ttl, soa.payload.minimum), (7, 7))

    def test_option(self) -> None:
        from twisted.python import usage

        from skydns.tap import Options

        options = Options()
        options.parseOptions([])
        self.assertEqual(options["negative-ttl"], DEFAULT_NEGATIVE_TTL)
        self.assertEqual(DEFAULT_NEGATIVE_TTL, 5)
        for bad in ("-1", "10801", "x"):
            with self.subTest(bad=bad), self.assertRaises(usage.UsageError):
                Options().parseOptions(["--negative-ttl", bad])


class EmptyFieldTests(AuthorityTestCase):
    def test_no_environment_is_found_with_a_wildcard_there(self) -> None:
        """An instance registered without Environment answers at
        web.*.<domain> (what the register answer's DNS says), not at web.<domain>."""
        self.register("w1", name="web", environment="", region="", version="")
        answers, _, _ = self.lookup("web.*.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 8080, "w1.skydns.local")])
        self.nxdomain("web.skydns.local")


class DrainTests(AuthorityTestCase):
    def test_drained_instance_is_in_no_answer(self) -> None:
        """A drained instance leaves SRV, A and its <uuid> name (NXDOMAIN
        when it was the only match) and failover; undrained, it is back."""
        self.register("a1", host="10.0.0.1")
        self.register("b2", host="10.0.0.2", region="west")
        now = self.clock.seconds()
        self.registry.apply(Drain("b2", True, now))
        answers, _, _ = self.lookup("east.rails.production.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 8080, "a1.skydns.local")])
        self.assert_nodata("west.rails.production.skydns.local", dns.A)  # a1 by failover
        self.nxdomain("b2.skydns.local", dns.A)
        self.registry.apply(Drain("a1", True, now))
        self.nxdomain("rails.production.skydns.local", dns.SRV)
        self.registry.apply(Drain("b2", False, now))
        answers, _, _ = self.lookup("rails.production.skydns.local", dns.A)
        self.assertEqual(addresses(answers),
                         [("rails.production.skydns.local", dns.A, "10.0.0.2")])  # fmt: skip
        answers, _, _ = self.lookup("b2.skydns.local", dns.A)
        self.assertEqual(len(answers), 1)


class RFC2782Tests(AuthorityTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.register("t1", host="10.0.0.1")
        self.register("t2", host="10.0.0.2", region="west")
        self.register("u1", host="10.0.0.3", protocol="udp")
        self.register("w1", host="10.0.0.4", name="web")

    def test_tcp_name_answers_like_the_plain_name_for_tcp_instances(self) -> None:
        """_rails._tcp.production is rails.production for tcp instances
        (the default Protocol); udp ones only under _udp."""
        tcp, _, _ = self.lookup("_rails._tcp.production.skydns.local", dns.SRV)
        plain, _, _ = self.lookup("rails.production.skydns.local", dns.SRV)
        self.assertEqual(srv(tcp), [(10, 50, 8080, "t1.skydns.local"),
                                    (10, 50, 8080, "t2.skydns.local")])  # fmt: skip
        self.assertEqual(len(plain), 3)
        udp, _, _ = self.lookup("_rails._udp.production.skydns.local", dns.SRV)
        self.assertEqual(srv(udp), [(10, 100, 8080, "u1.skydns.local")])
        self.nxdomain("_web._udp.production.skydns.local")

    def test_with_regions_failover_and_wildcards(self) -> None:
        """The rest of the name keeps every label rule: an explicit region
        with failover, wildcards, the service label as a wildcard."""
        answers, _, _ = self.lookup("_rails._tcp.west.*.production.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [(10, 100, 8080, "t2.skydns.local"),
                                        (20, 100, 8080, "t1.skydns.local")])  # fmt: skip
        answers, _, _ = self.lookup("_*._tcp.production.skydns.local", dns.SRV)
        self.assertEqual(len(answers), 3)
        answers, _, _ = self.lookup("_rails._tcp.skydns.local", dns.A)
        self.assertEqual(len(answers), 2)

    def test_contradicting_name_is_nxdomain(self) -> None:
        """_rails._tcp.web.production names two services: nothing matches."""
        self.nxdomain("_rails._tcp.web.production.skydns.local")
        self.nxdomain("_rails._sctp.production.skydns.local")


class SkyDNS1OrderTests(AuthorityTestCase):
    """--names skydns1: region left of version, as SkyDNS 1's README and
    server tests ask."""

    def setUp(self) -> None:
        super().setUp()
        self.authority = SkyDNSAuthority(self.registry, self.clock, "skydns.local",
                                         self.nameservers, names=SKYDNS1_ORDER)  # fmt: skip
        for uuid, region, version, host in (("1001", "East", "1.0.0", "web1.site.com"),
                                            ("1002", "East", "1.0.0", "web2.site.com"),
                                            ("1003", "West", "1.0.0", "web3.site.com"),
                                            ("1004", "West", "2.0.0", "web4.site.com")):
            self.register(uuid, name="TestService", environment="Production", region=region,
                          version=version, host=host, port=80)  # fmt: skip

    def test_readme_queries(self) -> None:
        """east.*.testservice.production: east first, the others at
        priority 20; 1-0-0.testservice.production is a version;
        east.1-0-0.testservice.production both."""
        answers, _, _ = self.lookup("east.*.testservice.production.skydns.local", dns.SRV)
        self.assertEqual(srv(answers), [
            (10, 50, 80, "web1.site.com"), (10, 50, 80, "web2.site.com"),
            (20, 50, 80, "web3.site.com"), (20, 50, 80, "web4.site.com"),
        ])  # fmt: skip
        answers, _, _ = self.lookup("1-0-0.testservice.production.skydns.local", dns.SRV)
        self.assertEqual([r[1] for r in srv(answers)], [33, 33, 33])
        answers, _, _ = self.lookup("east.1-0-0.testservice.production.skydns.local", dns.SRV)
        self.assertEqual([r[:2] for r in srv(answers)], [(10, 50), (10, 50), (20, 100)])
        answers, _, _ = self.lookup("west.*.*.production.skydns.local", dns.SRV)
        self.assertEqual([r[:2] for r in srv(answers)], [(10, 50), (10, 50), (20, 50), (20, 50)])

    def test_seed_order_reads_the_same_names_otherwise(self) -> None:
        """The same question in the seed order reads east as a version."""
        seed = SkyDNSAuthority(self.registry, self.clock, "skydns.local", self.nameservers)
        self.assertRaises(NameNotFound, seed.resolve,
                          b"east.*.testservice.production.skydns.local", dns.SRV)  # fmt: skip
