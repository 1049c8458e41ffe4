"""Signatures and denials checked by an independent validator (dnspython's
``dns.dnssec.validate``): what the DNS side will send must validate."""

from __future__ import annotations

import shutil
import struct
import tempfile
import time

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.trial.unittest import SynchronousTestCase

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
