"""Reverse lookups (PTR) for the addresses of registered instances.

`ReverseResolver` answers ``in-addr.arpa`` and ``ip6.arpa`` names (RFC 1035
§3.5, RFC 3596 §2.5) whose address is the Host of a live instance: one PTR
record per such instance, pointing at its ``<uuid>.<domain>`` name, with the
remaining lease as TTL and AA set.  Every other name, reverse or not, fails
with a bare `twisted.names.error.DomainError`, so a `ResolverChain` passes it
on and the server forwards it.

Choices where the spec is silent:

- Only PTR and ANY questions are answered here; another type for a
  registered address (say TXT) is forwarded, since SkyDNS holds no other
  records there and is not the zone's authority.
- A partial reverse name (``2.1.10.in-addr.arpa``) or one that is not an
  address (a label that is not a decimal octet or hex nibble) is forwarded.
- Several instances with the same address get one PTR each, in UUID order.
"""

from __future__ import annotations

import ipaddress

from twisted.internet import defer
from twisted.names import dns, error
from twisted.names.common import ResolverBase

from skydns.clock import Clock
from skydns.dns.records import header, ttl_of, uuid_name
from skydns.registry import Registry

_IPV4_SUFFIX = b".in-addr.arpa"
_IPV6_SUFFIX = b".ip6.arpa"
_HEX = frozenset(b"0123456789abcdef")

Sections = tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]


def address_of(name: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a full reverse name spells, or None for anything else.

    ``4.3.2.1.in-addr.arpa`` is 1.2.3.4 (four decimal labels, no leading
    zeros); an ``ip6.arpa`` name is 32 single hex-digit labels, least
    significant nibble first.  Case and a final dot do not matter.
    """
    key = name.lower().rstrip(b".")
    if key.endswith(_IPV4_SUFFIX):
        labels = key[: -len(_IPV4_SUFFIX)].split(b".")
        if len(labels) != 4 or not all(_octet(label) for label in labels):
            return None
        return ipaddress.IPv4Address(b".".join(reversed(labels)).decode("ascii"))
    if key.endswith(_IPV6_SUFFIX):
        labels = key[: -len(_IPV6_SUFFIX)].split(b".")
        if len(labels) != 32 or not all(len(label) == 1 and label[0] in _HEX for label in labels):
            return None
        return ipaddress.IPv6Address(int(b"".join(reversed(labels)), 16))
    return None


def _octet(label: bytes) -> bool:
    return (
        0 < len(label) <= 3
        and label.isdigit()
        and (label == b"0" or not label.startswith(b"0"))
        and int(label) <= 255
    )


class ReverseResolver(ResolverBase):
    """PTR answers for the addresses of ``registry``'s live instances (see the module)."""

    def __init__(self, registry: Registry, clock: Clock, domain: str) -> None:
        ResolverBase.__init__(self)
        self.registry = registry
        self.clock = clock
        self._domain = domain.strip(".").lower().encode("ascii")

    def _lookup(
        self, name: bytes, cls: int, type: int, timeout: object = None
    ) -> defer.Deferred[Sections]:
        return defer.maybeDeferred(self.resolve, name, type)

    def resolve(self, name: bytes, qtype: int) -> Sections:
        """Answer, authority and additional sections for ``name``/``qtype``.

        Raises a bare `error.DomainError` for every name it does not answer.
        """
        if qtype not in (dns.PTR, dns.ALL_RECORDS):
            raise error.DomainError(name)
        address = address_of(name)
        if address is None:
            raise error.DomainError(name)
        now = self.clock.seconds()
        instances = self.registry.by_address(str(address), now)
        if not instances:
            raise error.DomainError(name)
        answers = []
        for instance in instances:
            ttl = ttl_of(instance, now)
            target = uuid_name(instance.service.uuid, self._domain)
            answers.append(header(name, dns.Record_PTR(target, ttl), ttl))
        return answers, [], []
