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
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any

from twisted.names import dns

from skydns.clock import Clock
from skydns.dns.records import WireRecord
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
    """Signs answers for ``domain`` with ``key``; ``types_at(name)`` gives
    the record types a name has (for a denial's NSEC)."""

    def __init__(self, key: ZoneKey, clock: Clock, domain: str,
                 types_at: Callable[[bytes], set[int]]) -> None:  # fmt: skip
        self.key = key
        self.clock = clock
        self.domain = domain.strip(".").lower().encode("ascii")
        self.types_at = types_at

    def fresh_until(self) -> float:
        """Until when an answer signed now may be served from a cache: its
        signatures are made again well before they expire."""
        return self.clock.seconds() + VALIDITY * 86400 - RESIGN_BEFORE

    def dnskey(self) -> WireRecord:
        return WireRecord(self.domain, DNSKEY, DNSKEY_TTL, self.key.dnskey_rdata)

    def sign(self, qname: bytes, qtype: int, rcode: int,
             sections: Sections) -> tuple[int, Sections]:  # fmt: skip
        """The rcode and sections of the signed answer to ``qname``/``qtype``."""
        answers, authority, additional = ([_wire(r) for r in s] for s in sections)
        if qtype == DNSKEY and qname == self.domain:
            answers = [self.dnskey()]
            authority = []
        if not answers and rcode in (dns.OK, dns.ENAME):
            # A denial: NOERROR, and an NSEC at the name saying what is there.
            exists = rcode == dns.OK
            types = self.types_at(qname) - {qtype} if exists else {NXNAME}
            if qname == self.domain:
                types |= {dns.SOA, dns.NS, DNSKEY}
            ttl = min((r.ttl for r in authority), default=5)
            authority.append(WireRecord(qname, NSEC, ttl, compact_nsec(
                qname.decode("ascii", "replace"), types)))  # fmt: skip
            rcode = dns.OK
        return rcode, (self._signed(answers), self._signed(authority), self._signed(additional))

    def _signed(self, records: Sequence[WireRecord]) -> list[Any]:
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
            rdata = rrsig_rdata(self.key, name.decode("ascii", "replace"), rtype, ttl,
                                [_canonical(r) for r in rrset], now)  # fmt: skip
            out.append(WireRecord(name, 46, ttl, rdata, expires))
        return out
