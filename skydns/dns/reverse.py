"""Reverse lookups (PTR) for the addresses of registered instances.

`ReverseResolver` answers ``in-addr.arpa`` and ``ip6.arpa`` names (RFC 1035
§3.5, RFC 3596 §2.5) whose address is the Host of a live instance: one PTR
record per such instance, pointing at its ``<uuid>.<domain>`` name, with the
remaining lease as TTL and AA set.  Every other name, reverse or not, fails
with a bare `twisted.names.error.DomainError`, so a `ResolverChain` passes it
on and the server forwards it.

A reverse zone named with ``--reverse-zone`` (``1.0.10.in-addr.arpa``) is
SkyDNS's whole: its apex has the domain's SOA and NS under its own name, a
name in it that is neither a registered address nor above one is NXDOMAIN
(with that SOA), and nothing in it is forwarded.  That makes it a zone a
validating resolver can be given a trust anchor for: with ``--dnssec-key``
its answers are signed like the domain's.

Choices where the spec is silent:

- Outside a reverse zone, only PTR and ANY questions are answered here;
  another type for a registered address (say TXT) is forwarded, since
  SkyDNS is not that zone's authority.  Inside one it is NODATA.
- Outside a reverse zone a partial reverse name (``2.1.10.in-addr.arpa``) or
  one that is not an address is forwarded; inside one, a partial name above
  a registered address (held, live or not) is NODATA, any other NXDOMAIN.
- Several instances with the same address get one PTR each, in UUID order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.names import dns, error
from twisted.names.common import ResolverBase

from skydns.clock import Clock
from skydns.dns.nameservers import NS_TTL
from skydns.dns.records import header, ttl_of, uuid_name
from skydns.dns.resolution import NameNotFound
from skydns.dns.zones import longest_zone
from skydns.registry import Registry

_IPV4_SUFFIX = b".in-addr.arpa"
_IPV6_SUFFIX = b".ip6.arpa"
_HEX = frozenset(b"0123456789abcdef")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Sections = tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]


def network_of(name: bytes) -> Network | None:
    """The network a reverse name spells: ``2.1.10.in-addr.arpa`` is
    10.1.2.0/24, ``in-addr.arpa`` 0.0.0.0/0, a full name one address (a /32
    or /128); None for a name that is not one (a label that is not a decimal
    octet or hex nibble, too many labels, another suffix).  Case and a final
    dot do not matter."""
    key = name.lower().rstrip(b".")
    if key in (_IPV4_SUFFIX[1:], _IPV6_SUFFIX[1:]):
        labels: list[bytes] = []
    elif key.endswith((_IPV4_SUFFIX, _IPV6_SUFFIX)):
        labels = key.rsplit(b".", 2)[0].split(b".")
    else:
        return None
    if key.endswith(_IPV4_SUFFIX[1:]):
        if len(labels) > 4 or not all(_octet(label) for label in labels):
            return None
        octets = [int(label) for label in reversed(labels)] + [0] * (4 - len(labels))
        return ipaddress.IPv4Network((bytes(octets), 8 * len(labels)))
    if len(labels) > 32 or not all(len(label) == 1 and label[0] in _HEX for label in labels):
        return None
    nibbles = b"".join(reversed(labels)).ljust(32, b"0")
    return ipaddress.IPv6Network((int(nibbles, 16), 4 * len(labels)))


def address_of(name: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a full reverse name spells (RFC 1035 §3.5, RFC 3596
    §2.5: four decimal labels, or 32 hex nibbles least significant first),
    or None for anything else (see `network_of`)."""
    network = network_of(name)
    if network is None or network.prefixlen != network.max_prefixlen:
        return None
    return network.network_address


def parse_reverse_zone(text: str) -> tuple[bytes, Network]:
    """A ``--reverse-zone`` value: the zone's name (lower case, no final dot)
    and the network it covers; ValueError saying why for anything else."""
    name = text.strip().lower().rstrip(".").encode("ascii", "replace")
    network = network_of(name)
    if network is None or network.prefixlen == network.max_prefixlen:
        raise ValueError(
            f"{text!r}: expected a reverse zone on a label boundary, such as "
            "10.in-addr.arpa or 8.b.d.0.1.0.0.2.ip6.arpa"
        )
    return name, network


def _octet(label: bytes) -> bool:
    return (
        0 < len(label) <= 3
        and label.isdigit()
        and (label == b"0" or not label.startswith(b"0"))
        and int(label) <= 255
    )


class ReverseResolver(ResolverBase):
    """PTR answers for the addresses of ``registry``'s live instances, and
    the whole of each reverse zone in ``zones`` (see the module).

    ``soa`` gives the domain's SOA record and ``nameservers`` its NS names
    (with glue); a reverse zone's apex shows the same under its own name."""

    def __init__(
        self, registry: Registry, clock: Clock, domain: str,
        zones: Sequence[tuple[bytes, Network]] = (),
        soa: Callable[[], dns.RRHeader] | None = None,
        nameservers: Callable[[], list[tuple[bytes, Any]]] = list,
    ) -> None:  # fmt: skip
        ResolverBase.__init__(self)
        self.registry = registry
        self.clock = clock
        self._domain = domain.strip(".").lower().encode("ascii")
        if zones and soa is None:
            raise ValueError("reverse zones need the domain's SOA")
        #: The names of our reverse zones.
        self.zones = [name for name, _ in zones]
        self._soa = soa
        self._nameservers = nameservers

    def _lookup(
        self, name: bytes, cls: int, type: int, timeout: object = None
    ) -> defer.Deferred[Sections]:
        return defer.maybeDeferred(self.resolve, name, type)

    def zone_of(self, name: bytes) -> bytes | None:
        """The longest of our reverse zones that holds ``name``, or None."""
        return longest_zone(name, self.zones)

    def resolve(self, name: bytes, qtype: int) -> Sections:
        """Answer, authority and additional sections for ``name``/``qtype``.

        Raises `NameNotFound` for a name of one of our zones that does not
        exist, a bare `error.DomainError` for every other name it does not
        answer.
        """
        zone = self.zone_of(name)
        if zone is not None:
            return self._in_zone(zone, name, qtype)
        if qtype not in (dns.PTR, dns.ALL_RECORDS):
            raise error.DomainError(name)
        answers = self._pointers(name)
        if not answers:
            raise error.DomainError(name)
        return answers, [], []

    def types_at(self, name: bytes) -> set[int]:
        """The record types ``name`` has (the NSEC of a signed denial)."""
        zone = self.zone_of(name)
        if zone is not None and name.lower().rstrip(b".") == zone:
            return {dns.SOA, dns.NS}
        return {dns.PTR} if self._pointers(name) else set()

    def _pointers(self, name: bytes) -> list[dns.RRHeader]:
        """One PTR record per live instance at the address ``name`` spells."""
        address = address_of(name)
        if address is None:
            return []
        now = self.clock.seconds()
        answers = []
        for instance in self.registry.by_address(str(address), now):
            ttl = ttl_of(instance, now)
            target = uuid_name(instance.service.uuid, self._domain)
            answers.append(header(name, dns.Record_PTR(target, ttl), ttl))
        return answers

    def _in_zone(self, zone: bytes, name: bytes, qtype: int) -> Sections:
        """The authoritative answer for a name of reverse zone ``zone``: PTR
        of a registered address, SOA and NS at the apex, NODATA for a name
        that exists (an address, or a name above one: an empty
        non-terminal), NXDOMAIN for every other."""
        soa = self._zone_soa(zone)
        key = name.lower().rstrip(b".")
        if key == zone:
            answers = []
            if qtype in (dns.SOA, dns.ALL_RECORDS):
                answers.append(header(name, soa.payload, soa.ttl))
            additional = []
            if qtype in (dns.NS, dns.ALL_RECORDS):
                for server, glue in self._nameservers():
                    answers.append(header(name, dns.Record_NS(server, NS_TTL), NS_TTL))
                    if glue is not None:
                        additional.append(header(server, glue, NS_TTL))
            return answers, ([] if answers else [soa]), additional
        pointers = self._pointers(name)
        if pointers:
            if qtype in (dns.PTR, dns.ALL_RECORDS):
                return pointers, [], []
            return [], [soa], []
        network = network_of(key)
        if network is not None and network.prefixlen < network.max_prefixlen \
                and self.registry.holds_address_in(network):  # fmt: skip
            return [], [soa], []
        raise NameNotFound(name, [soa])

    def _zone_soa(self, zone: bytes) -> dns.RRHeader:
        """The zone's SOA: the domain's, under the zone's name."""
        soa = self._soa()  # type: ignore[misc]  # given with zones
        return header(zone, soa.payload, soa.ttl)
