"""Signing the authority's answers for clients that ask (the DO bit): every
RRset gets its RRSIG, the apex its DNSKEY, and a name or type that does not
exist a compact denial (RFC 9824: NOERROR, an NSEC at the name listing what
does exist there, NXNAME for a name that does not).

The records are `WireRecord`s, so the DNS side encodes them as it encodes
answers built from instances, and an answer cache keeps the signed answer
like any other (under its own key: the DO bit is in the request).  An RRSIG
counts down with the records it covers (its ``expires`` is theirs) and is
never longer-lived than them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from io import BytesIO
from typing import Any

from attrs import evolve
from twisted.names import dns

from skydns.clock import Clock
from skydns.dns.records import WireRecord
from skydns.dns.zones import longest_zone
from skydns.dnssec.keys import ZoneKey
from skydns.dnssec.signing import (
    DNSKEY,
    NSEC,
    NXNAME,
    RESIGN_BEFORE,
    VALIDITY,
    compact_nsec,
    rrsig_rdata,
)

#: TTL of the DNSKEY RRset (and its signature).
DNSKEY_TTL = 3600

Sections = tuple[list[Any], list[Any], list[Any]]


def _wire(record: Any) -> WireRecord:
    """``record`` (a `WireRecord` or a `dns.RRHeader`) as a `WireRecord`."""
    if type(record) is WireRecord:
        return record
    out = BytesIO()
    record.payload.encode(out, None)  # uncompressed
    return WireRecord(record.name.name.lower(), record.type, record.ttl, out.getvalue())


def _canonical(record: WireRecord) -> bytes:
    """The RDATA as signed (RFC 4034 §6.2): names in it lower case."""
    if record.type == dns.SRV:
        return record.rdata[:6] + record.rdata[6:].lower()
    if record.type in (dns.NS, dns.PTR, dns.CNAME, dns.SOA):
        return record.rdata.lower() if record.type != dns.SOA else _soa(record.rdata)
    return record.rdata


def _soa(rdata: bytes) -> bytes:
    """An SOA RDATA with its two names lower case (the numbers after them as they are)."""
    at = 0
    for _ in range(2):
        while rdata[at]:
            at += 1 + rdata[at]
        at += 1
    return rdata[:at].lower() + rdata[at:]


class Signer:
    """Signs answers in its zones with ``key``: the domain, and the reverse
    zones SkyDNS is the authority for (``--reverse-zone``).  ``zones`` maps
    each zone's name to the function that gives the record types a name of
    that zone has (for a denial's NSEC)."""

    def __init__(self, key: ZoneKey, clock: Clock,
                 zones: Mapping[str, Callable[[bytes], set[int]]]) -> None:  # fmt: skip
        self.clock = clock
        self._zones = {
            name.strip(".").lower().encode("ascii"): (evolve(key, zone=name), types_at)
            for name, types_at in zones.items()
        }

    def zone_of(self, qname: bytes) -> bytes | None:
        """The longest of our zones that holds ``qname``, or None."""
        return longest_zone(qname, self._zones)

    def fresh_until(self) -> float:
        """Until when an answer signed now may be served from a cache: its
        signatures are made again well before they expire."""
        return self.clock.seconds() + VALIDITY * 86400 - RESIGN_BEFORE

    def dnskey(self, zone: bytes) -> WireRecord:
        key = self._zones[zone][0]
        return WireRecord(zone, DNSKEY, DNSKEY_TTL, key.dnskey_rdata)

    def sign(self, qname: bytes, qtype: int, rcode: int,
             sections: Sections) -> tuple[int, Sections]:  # fmt: skip
        """The rcode and sections of the signed answer to ``qname``/``qtype``
        (as they are for a name outside our zones)."""
        zone = self.zone_of(qname)
        if zone is None:
            return rcode, sections
        key, types_at = self._zones[zone]
        answers, authority, additional = ([_wire(r) for r in s] for s in sections)
        if qtype == DNSKEY and qname == zone:
            answers = [self.dnskey(zone)]
            authority = []
        if not answers and rcode in (dns.OK, dns.ENAME):
            # A denial: NOERROR, and an NSEC at the name saying what is there.
            exists = rcode == dns.OK
            types = types_at(qname) - {qtype} if exists else {NXNAME}
            if qname == zone:
                types |= {dns.SOA, dns.NS, DNSKEY}
            ttl = min((r.ttl for r in authority), default=5)
            authority.append(WireRecord(qname, NSEC, ttl, compact_nsec(
                qname.decode("ascii", "replace"), types)))  # fmt: skip
            rcode = dns.OK
        signed = (self._signed(key, answers), self._signed(key, authority),
                  self._signed(key, additional))  # fmt: skip
        return rcode, signed

    def _signed(self, key: ZoneKey, records: Sequence[WireRecord]) -> list[Any]:
        """``records`` with an RRSIG after each RRset's records."""
        groups: dict[tuple[bytes, int], list[WireRecord]] = {}
        for record in records:
            if record.type == dns.OPT:
                continue
            groups.setdefault((record.name, record.type), []).append(record)
        out: list[Any] = list(records)
        now = self.clock.seconds()
        for (name, rtype), rrset in groups.items():
            ttl = min(r.ttl for r in rrset)
            expires = min((r.expires for r in rrset), default=math.inf)
            rdata = rrsig_rdata(key, name.decode("ascii", "replace"), rtype, ttl,
                                [_canonical(r) for r in rrset], now)  # fmt: skip
            out.append(WireRecord(name, 46, ttl, rdata, expires))
        return out
