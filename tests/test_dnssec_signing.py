"""Signatures and denials checked by an independent validator (dnspython's
``dns.dnssec.validate``): what the DNS side will send must validate."""

from __future__ import annotations

import shutil
import struct
import tempfile
import time

import dns.dnssec
import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.names.resolve import ResolverChain
from twisted.trial.unittest import SynchronousTestCase

from skydns.dns.reverse import ReverseResolver, parse_reverse_zone
from skydns.dnssec.keys import ECDSAP256SHA256, ED25519, generate
from skydns.dnssec.signing import (
    NSEC,
    NXNAME,
    RRSIG,
    canonical_soa,
    canonical_srv,
    compact_nsec,
    label_count,
    rrsig_rdata,
    type_bitmap,
)

ZONE = "skydns.local"
REVERSE = "0.10.in-addr.arpa"


def rrset_of(owner: str, rtype: int, ttl: int, rdatas: list[bytes]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(dns.name.from_text(owner), dns.rdataclass.IN, rtype)
    for rdata in rdatas:
        rrset.add(dns.rdata.from_wire(dns.rdataclass.IN, rtype, rdata, 0, len(rdata)), ttl)
    return rrset


class SigningTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="skydns-sign-")
        self.addCleanup(shutil.rmtree, self.directory, True)

    def keyring(self, key: object) -> dict[dns.name.Name, dns.rrset.RRset]:
        dnskey = rrset_of(ZONE + ".", dns.rdatatype.DNSKEY, 300,
                          [key.dnskey_rdata])  # type: ignore[attr-defined]  # fmt: skip
        return {dns.name.from_text(ZONE + "."): dnskey}

    def validate(self, key: object, owner: str, rtype: int, ttl: int,
                 rdatas: list[bytes], now: float) -> None:  # fmt: skip
        rrset = rrset_of(owner, rtype, ttl, rdatas)
        signature = rrsig_rdata(key, owner, rtype, ttl, rdatas, now)  # type: ignore[arg-type]
        sigset = rrset_of(owner, RRSIG, ttl, [signature])
        dns.dnssec.validate(rrset, sigset, self.keyring(key), now=now)

    def test_answers_validate_for_both_algorithms(self) -> None:
        """SRV (several records, any order, a mixed-case target), A, SOA and
        DNSKEY RRsets signed with each algorithm validate."""
        now = time.time()
        for algorithm in (ECDSAP256SHA256, ED25519):
            key, _ = generate(ZONE, algorithm, self.directory)
            srv = [canonical_srv(10, 50, 8080, "b1.skydns.local"),
                   canonical_srv(10, 50, 80, "Web1.Example.com")]  # fmt: skip
            self.validate(key, "rails.production.skydns.local.", dns.rdatatype.SRV, 30, srv, now)
            self.validate(key, "1001.skydns.local.", dns.rdatatype.A, 30, [bytes([10, 0, 0, 1])],
                          now)  # fmt: skip
            soa = canonical_soa("node1.ns.dns.skydns.local", "hostmaster.skydns.local",
                                7, 3600, 600, 86400, 5)  # fmt: skip
            self.validate(key, ZONE + ".", dns.rdatatype.SOA, 5, [soa], now)
            self.validate(key, ZONE + ".", dns.rdatatype.DNSKEY, 300, [key.dnskey_rdata], now)

    def test_a_tampered_or_expired_answer_does_not_validate(self) -> None:
        key, _ = generate(ZONE, ECDSAP256SHA256, self.directory)
        now = time.time()
        owner = "1001.skydns.local."
        signature = rrsig_rdata(key, owner, dns.rdatatype.A, 30, [bytes([10, 0, 0, 1])], now)
        sigset = rrset_of(owner, RRSIG, 30, [signature])
        forged = rrset_of(owner, dns.rdatatype.A, 30, [bytes([10, 6, 6, 6])])
        self.assertRaises(dns.dnssec.ValidationFailure, dns.dnssec.validate, forged, sigset,
                          self.keyring(key), now=now)  # fmt: skip
        honest = rrset_of(owner, dns.rdatatype.A, 30, [bytes([10, 0, 0, 1])])
        self.assertRaises(dns.dnssec.ValidationFailure, dns.dnssec.validate, honest, sigset,
                          self.keyring(key), now=now + 8 * 86400)  # fmt: skip

    def test_compact_denial_nsec(self) -> None:
        """A name that does not exist: NSEC at it, next \\000.name, types
        RRSIG NSEC NXNAME; a name without the type asked: its types. It
        parses as NSEC and its signature validates."""
        key, _ = generate(ZONE, ED25519, self.directory)
        now = time.time()
        owner = "nope.production.skydns.local."
        rdata = compact_nsec(owner, [NXNAME])
        parsed = dns.rdata.from_wire(dns.rdataclass.IN, NSEC, rdata, 0, len(rdata))
        self.assertEqual(parsed.next, dns.name.from_text("\\000." + owner))
        self.assertEqual(sorted(t for w in parsed.windows for t in _types(w)),
                         [RRSIG, NSEC, NXNAME])  # fmt: skip
        self.validate(key, owner, NSEC, 5, [rdata], now)
        nodata = compact_nsec("rails.production.skydns.local.", [dns.rdatatype.SRV,
                                                                 dns.rdatatype.A])
        parsed = dns.rdata.from_wire(dns.rdataclass.IN, NSEC, nodata, 0, len(nodata))
        self.assertEqual(sorted(t for w in parsed.windows for t in _types(w)),
                         [dns.rdatatype.A, dns.rdatatype.SRV, RRSIG, NSEC])

    def test_labels_and_bitmap(self) -> None:
        self.assertEqual(label_count("a.b.skydns.local."), 4)
        self.assertEqual(label_count("*.b.skydns.local"), 3)
        self.assertEqual(type_bitmap([1, 33]), bytes([0, 5, 0x40, 0, 0, 0, 0x40]))
        self.assertEqual(type_bitmap([NXNAME]), bytes([0, 17]) + bytes(16) + b"\x80")
        self.assertEqual(struct.unpack("!H", rrsig_rdata(
            generate(ZONE, ED25519, self.directory)[0], "x.skydns.local.", 1, 30,
            [bytes(4)], time.time())[:2])[0], 1)  # fmt: skip


def _types(window: tuple[int, bytes]) -> list[int]:
    number, bits = window
    return [number * 256 + i * 8 + b for i, byte in enumerate(bits) for b in range(8)
            if byte & (0x80 >> b)]  # fmt: skip


class SignedAnswerTests(SynchronousTestCase):
    """The fast path's answers to DO queries, checked whole by dnspython:
    every RRset has a valid RRSIG; a denial is a signed compact NSEC; the
    same question without DO gets no DNSSEC records; the signed answer is
    cached under its own key."""

    def test_signed_answers_on_the_twisted_names_path(self) -> None:
        """A server without the fast path signs the same way."""
        self.check(fast_path=False)

    def test_signed_answers(self) -> None:
        self.check(fast_path=True)

    def check(self, fast_path: bool) -> None:
        import dns.message
        from twisted.internet.task import Clock

        from skydns.commands import Register
        from skydns.dns.assemble import dnssec_signer
        from skydns.dns.authority import SkyDNSAuthority
        from skydns.dns.server import SkyDNSServerFactory
        from skydns.names import Service
        from skydns.registry import Registry
        from tests.test_dns_fastpath import Server

        directory = tempfile.mkdtemp(prefix="skydns-signed-")
        self.addCleanup(shutil.rmtree, directory, True)
        key, _ = generate(ZONE, ECDSAP256SHA256, directory)
        clock = Clock()
        clock.advance(time.time())
        registry = Registry()
        registry.apply(Register(Service("r1", "rails", "production", "east", "1", "10.0.0.1",
                                        8080, 600), clock.seconds() - 0.5))  # fmt: skip
        authority = SkyDNSAuthority(registry, clock, ZONE, [("node1", "127.0.0.1")])
        reverse = ReverseResolver(registry, clock, ZONE, [parse_reverse_zone("0.10.in-addr.arpa")],
                                  authority.soa, authority.nameservers)  # fmt: skip
        resolver = ResolverChain([authority, reverse])
        server = Server(SkyDNSServerFactory(resolver, clock, fast_path=fast_path))
        server.factory.direct.signer = dnssec_signer(key, clock, ZONE, authority, reverse)
        keyring = {dns.name.from_text(zone + "."):
                   rrset_of(zone + ".", dns.rdatatype.DNSKEY, 3600, [key.dnskey_rdata])
                   for zone in (ZONE, REVERSE)}

        def signed(name: str, rdtype: str) -> dns.message.Message:
            query = dns.message.make_query(name, rdtype, want_dnssec=True)
            (reply,) = server.ask(query.to_wire())
            message = dns.message.from_wire(reply)
            sections = message.answer + message.authority + message.additional
            covered = [r for r in sections if r.rdtype != dns.rdatatype.RRSIG]
            for rrset in covered:
                sig = next((s for s in sections if s.rdtype == dns.rdatatype.RRSIG
                            and s.name == rrset.name and s.covers == rrset.rdtype), None)
                self.assertIsNotNone(sig, (name, rdtype, message.to_text()))
                dns.dnssec.validate(rrset, sig, keyring, now=clock.seconds())
            self.assertTrue(message.ednsflags & dns.flags.DO)
            return message

        answer = signed("rails.production.skydns.local", "SRV")
        self.assertEqual([r.rdtype for r in answer.answer],
                         [dns.rdatatype.SRV, dns.rdatatype.RRSIG])  # fmt: skip
        denial = signed("nope.production.skydns.local", "A")
        self.assertEqual(denial.rcode(), dns.rcode.NOERROR)
        self.assertIn(dns.rdatatype.NSEC, [r.rdtype for r in denial.authority])
        self.assertEqual(len(signed("skydns.local", "DNSKEY").answer), 2)
        # The reverse zone: PTR signed by the zone, denials, its DNSKEY.
        pointer = signed("1.0.0.10.in-addr.arpa", "PTR")
        self.assertEqual([r.rdtype for r in pointer.answer],
                         [dns.rdatatype.PTR, dns.rdatatype.RRSIG])  # fmt: skip
        self.assertEqual(str(pointer.answer[1][0].signer), REVERSE + ".")
        for name, rdtype, bitmap in [("2.0.0.10.in-addr.arpa", "PTR", ["NXNAME"]),
                                     ("1.0.0.10.in-addr.arpa", "TXT", ["PTR"]),
                                     ("0.0.10.in-addr.arpa", "PTR", [])]:  # fmt: skip
            denial = signed(name, rdtype)
            self.assertEqual((denial.rcode(), denial.answer), (dns.rcode.NOERROR, []))
            (nsec,) = [r for r in denial.authority if r.rdtype == dns.rdatatype.NSEC]
            types = nsec[0].to_text().split()[1:]  # after the next name
            self.assertEqual(sorted(types), sorted(bitmap + ["RRSIG", "NSEC"]), name)
        self.assertEqual(len(signed(REVERSE, "DNSKEY").answer), 2)
        plain = dns.message.make_query("rails.production.skydns.local", "SRV", use_edns=0)
        (reply,) = server.ask(plain.to_wire())
        unsigned = dns.message.from_wire(reply)
        self.assertNotIn(dns.rdatatype.RRSIG, [r.rdtype for r in unsigned.answer])
        signed("rails.production.skydns.local", "SRV")  # again: from the cache
        cache = server.factory.answer_cache
        if fast_path:
            assert cache is not None
            self.assertGreaterEqual(sum(cache.udp_hits.values()), 1)
