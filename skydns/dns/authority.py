"""The authoritative resolver for the SkyDNS domain (SPEC.md §3).

`SkyDNSAuthority` answers, from the registry's live instances, every name
under its domain; like `twisted.names.authority.FileAuthority` it fails with
a plain `twisted.names.error.DomainError` for names outside it, so a
`ResolverChain` (see `make_resolver`) can hand those to the next resolver.

Choices where SPEC.md is silent:

- A single label that is a registered UUID (``<uuid>.<domain>``) names that
  instance; only when no instance has that UUID is it read as an
  environment.  It has SRV (the instance, weight 100) and A or AAAA (when its
  Host is an IP literal); a host-name instance has no address records there.
- ``ANY`` is answered with every record the name has (SRV, A and AAAA for a
  service name; SOA, NS, SRV, A and AAAA at the apex), not with a minimal
  RFC 8482 reply.
- A drained instance is in no answer: not under its patterns, not at the
  apex, not at ``<uuid>.<domain>`` (NXDOMAIN when it was the only match).
- AXFR/IXFR are refused (`QueryRefused`): the zone is not transferable.
- A name exists (NODATA rather than NXDOMAIN for a missing type) when a
  live instance matches it, or, if it names a region, when instances in
  other regions would answer its SRV query by failover.
- Failover records always get priority 20; an explicit service Weight is
  kept in both groups.
- The nameservers ``<node-id>.ns.dns.<domain>`` take precedence over a
  service pattern of the same shape.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Optional, Union

from twisted.internet import defer
from twisted.names import common, dns, error, resolve
from twisted.names.common import ResolverBase

from skydns.clock import Clock
from skydns.dns.nameservers import NS_TTL, ApexNameservers, Nameservers
from skydns.dns.records import (
    FAILOVER_PRIORITY,
    Answer,
    address_answer,
    header,
    srv_answer,
    to_header,
)
from skydns.dns.resolution import (
    FAILOVER,
    GET,
    QUERY,
    NameNotFound,
    QueryRefused,
    RegistryUnavailable,
    Resolution,
    Work,
)
from skydns.names import POSITIONS
from skydns.patterns import Pattern, PatternError, parse_pattern
from skydns.registry import Instance, Registry

#: SOA timers (RFC 1912 §2.2 ranges).  MINIMUM is the negative-caching TTL
#: (RFC 2308 §4) and the TTL of the SOA record itself: ``--negative-ttl``,
#: short by default, so that a service registered just after someone asked
#: for it is visible through caching resolvers within seconds.
SOA_REFRESH = 3600
SOA_RETRY = 600
SOA_EXPIRE = 86400
DEFAULT_NEGATIVE_TTL = 5
#: The longest negative-caching TTL accepted (RFC 2308 §5 recommends 1-3 hours).
MAX_NEGATIVE_TTL = 10800

#: Parsed names `SkyDNSAuthority._parse` remembers at most.
_NAMES_SIZE = 16384
#: `_parse` result for labels that are no pattern.
_NO_PATTERN: Any = object()
#: The pattern every instance matches (SRV at the apex).
_EVERYTHING = Pattern()


class SkyDNSAuthority(ResolverBase):
    """Authoritative answers for ``domain`` from ``registry``'s live instances.

    ``nameservers`` is a list of ``(node_id, ip)`` for the apex NS records and
    their glue, or a callable returning one (so a cluster can change it).
    """

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        domain: str,
        nameservers: Union[Nameservers, Callable[[], Nameservers]] = (),
        negative_ttl: int = DEFAULT_NEGATIVE_TTL,
        names: tuple[str, ...] = POSITIONS,
        unavailable: Optional[Callable[[], Optional[str]]] = None,
    ) -> None:
        ResolverBase.__init__(self)
        #: Why the registry cannot be vouched for now (SERVFAIL), or None.
        self.unavailable = unavailable
        #: The label order names are read in (`skydns.patterns.ORDERS`).
        self.names = names
        #: The SOA's MINIMUM and TTL: how long NXDOMAIN and NODATA are cached.
        self.negative_ttl = negative_ttl
        self.registry = registry
        self.clock = clock
        self.domain = domain.strip(".").lower()
        self._domain = self.domain.encode("ascii")
        self._suffix = b"." + self._domain
        self._nameservers = ApexNameservers(nameservers, self._domain)
        #: Names below the apex, parsed (see `_parse`).
        self._names: dict[bytes, tuple[list[str], Any]] = {}
        #: The SOA record for a registry version (with fixed nameservers).
        self._soa: tuple[int, Any] = (-1, None)

    # The IResolver entry point (ResolverBase.query and lookup* call it).
    def _lookup(
        self, name: bytes, cls: int, type: int, timeout: object = None
    ) -> "defer.Deferred[tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]]":
        return defer.maybeDeferred(self.resolve, name, type)

    def resolve(
        self, name: bytes, qtype: int
    ) -> tuple[list[dns.RRHeader], list[dns.RRHeader], list[dns.RRHeader]]:
        """Answer, authority and additional sections for ``name``/``qtype``.

        Raises `NameNotFound` (NXDOMAIN), `QueryRefused`, or
        `error.DomainError` when ``name`` is outside the domain.
        Records are `dns.RRHeader`s.
        """
        found = self.resolution(name, qtype)
        return (
            [to_header(r) for r in found.answers],
            list(found.authority),
            [to_header(r) for r in found.additional],
        )

    def resolution(self, name: bytes, qtype: int) -> Resolution:
        """The answer to ``name``/``qtype`` with how long it holds and what
        it was computed from (`Resolution`).  Exceptions are as for
        `resolve`; for `NameNotFound` the time the answer holds until is in
        its ``until`` attribute."""
        key = name.lower().rstrip(b".")
        parsed = self._names.get(key)
        if parsed is None and key != self._domain:
            if not key.endswith(self._suffix):
                raise error.DomainError(name)
            parsed = self._parse(key)
        if qtype in (dns.AXFR, dns.IXFR):
            raise QueryRefused(name)
        if self.unavailable is not None and self.unavailable() is not None:
            raise RegistryUnavailable(name)  # (answered SERVFAIL, never cached)
        work = Work(self.clock.seconds())
        if parsed is None:
            found: Optional[Answer] = self._apex(name, qtype, work)
        else:
            found = self._below_apex(name, key, parsed, qtype, work)
        if found is None:
            missing = NameNotFound(name, [self.soa()])
            missing.until = work.until
            raise missing
        if not found.answers:
            # (The SOA's serial is the registry version: no sources.)
            return Resolution((), (self.soa(),), (), work.until, None, work.until)
        sources = None
        if parsed is not None and parsed[0][-1] != "dns":
            # Below the apex and not a nameserver's name: the answer follows
            # from the registry reads alone.
            sources = tuple(work.reads)
        return Resolution(found.answers, (), found.additional, work.until, sources, work.lasts)

    def unchanged(self, sources: Any) -> bool:
        """Whether the registry reads an answer was computed from (see
        `resolve_sources`) give the very same instances now: then so would
        the answer, with the same TTLs until the time it was given with
        (never while the registry is unavailable: the answer is SERVFAIL)."""
        if self.unavailable is not None and self.unavailable() is not None:
            return False
        registry = self.registry
        now = self.clock.seconds()
        for kind, argument, result in sources:
            if kind is GET:
                if registry.get(argument, now) is not result:
                    return False
                continue
            again = (
                registry.query(argument, now, drained=False)
                if kind is QUERY
                else registry.failover(argument, now)
            )
            if len(again) != len(result) or not all(map(operator.is_, again, result)):
                return False
        return True

    def _parse(self, key: bytes) -> tuple[list[str], Any]:
        """The labels of ``key`` (a name below the apex) left of the domain,
        and their `parse_pattern` (`_NO_PATTERN` when they are none),
        remembered: the same names are asked for again and again."""
        labels = key[: -len(self._suffix)].decode("ascii", "replace").split(".")
        pattern = _NO_PATTERN
        # (An RFC 2782 name has two labels more than the pattern it asks.)
        if len(labels) <= len(POSITIONS) + 2 and all(labels):
            try:
                pattern = parse_pattern(labels, self.names)
            except PatternError:
                pass
        names = self._names
        if len(names) >= _NAMES_SIZE:
            names.clear()
        parsed = names[key] = (labels, pattern)
        return parsed

    # The apex and the nameservers.

    def soa(self) -> dns.RRHeader:
        """The SOA RR; its serial follows the registry's version."""
        version = self.registry.version
        if self._soa[0] == version and not self._nameservers.changing:
            return header(self._domain, self._soa[1], self.negative_ttl)
        servers = self.nameservers()
        primary = servers[0][0] if servers else b"ns.dns." + self._domain
        record = dns.Record_SOA(
            mname=primary,
            rname=b"hostmaster." + self._domain,
            serial=self.registry.version % 2**32,
            refresh=SOA_REFRESH,
            retry=SOA_RETRY,
            expire=SOA_EXPIRE,
            minimum=self.negative_ttl,
            ttl=self.negative_ttl,
        )
        self._soa = (version, record)
        return header(self._domain, record, self.negative_ttl)

    def nameservers(self, work: Optional[Work] = None) -> list[tuple[bytes, Any]]:
        """``(name, glue record or None)`` for each configured nameserver;
        answers built from a list that may change are kept a second at most."""
        if work is not None and self._nameservers.changing:
            work.changes_by(self.clock.seconds() + 1.0)
        return self._nameservers.pairs()

    def _apex(self, name: bytes, qtype: int, work: Work) -> Answer:
        """SOA and NS; SRV lists every instance DNS shows (SkyDNS 1's
        ``GetAllServicesDNS``); A and AAAA are the nameservers' addresses
        (the cluster's nodes, as SkyDNS 1 answered)."""
        found = Answer()
        every = qtype == dns.ALL_RECORDS
        if qtype == dns.SRV or every:
            matches = self.registry.query(_EVERYTHING, work.now, drained=False)
            work.uses(matches)
            found += srv_answer(name, matches, work.now, self._domain)
        if qtype in (dns.A, dns.AAAA) or every:
            addresses = [
                header(name, glue, NS_TTL)
                for _, glue in self.nameservers(work)
                if glue is not None and (every or glue.TYPE == qtype)
            ]
            found += Answer(tuple(addresses))
        if qtype in (dns.SOA, dns.ALL_RECORDS):
            soa = self.soa()
            found += Answer((header(name, soa.payload, self.negative_ttl),))
        if qtype in (dns.NS, dns.ALL_RECORDS):
            answers = []
            additional = []
            for server, glue in self.nameservers(work):
                answers.append(header(name, dns.Record_NS(server, NS_TTL), NS_TTL))
                if glue is not None:
                    additional.append(header(server, glue, NS_TTL))
            found += Answer(tuple(answers), tuple(additional))
        return found

    def _nameserver(self, key: bytes, qtype: int, name: bytes, work: Work) -> Optional[Answer]:
        """The answer for a nameserver's own name, or None if ``key`` is not one."""
        for server, glue in self.nameservers(work):
            if server == key:
                if glue is not None and qtype in (glue.TYPE, dns.ALL_RECORDS):
                    return Answer((header(name, glue, NS_TTL),))
                return Answer()
        return None

    def _is_nameserver_ancestor(self, key: bytes, work: Work) -> bool:
        """Whether ``key`` is an empty non-terminal above a nameserver name
        (``ns.dns.<domain>``): it exists, with no records (RFC 8020)."""
        return any(server.endswith(b"." + key) for server, _ in self.nameservers(work))

    # Service names.

    def _below_apex(
        self, name: bytes, key: bytes, parsed: tuple[list[str], Any], qtype: int, work: Work
    ) -> Optional[Answer]:
        labels, pattern = parsed
        now = work.now
        if labels[-1] == "dns":  # (only nameserver names and their parents end so)
            found = self._nameserver(key, qtype, name, work)
            if found is not None:
                return found
        if len(labels) == 1:
            instance = self.registry.get(labels[0], now)
            work.reads.append((GET, labels[0], instance))
            if instance is not None and not instance.service.drain:
                work.uses((instance,))
                return self._instance(name, instance, qtype, now)
        found = self._service(name, pattern, qtype, work) if pattern is not _NO_PATTERN else None
        if found is None and labels[-1] == "dns" and self._is_nameserver_ancestor(key, work):
            return Answer()
        return found

    def _instance(self, name: bytes, instance: Instance, qtype: int, now: float) -> Answer:
        """``<uuid>.<domain>``: the one instance with that UUID."""
        if qtype == dns.SRV:
            return srv_answer(name, (instance,), now, self._domain)
        if qtype == dns.A or qtype == dns.AAAA:
            return address_answer(name, (instance,), now, qtype)
        found = Answer()
        if qtype == dns.ALL_RECORDS:
            found += srv_answer(name, (instance,), now, self._domain)
            found += address_answer(name, (instance,), now, dns.A)
            found += address_answer(name, (instance,), now, dns.AAAA)
        return found

    def _service(self, name: bytes, pattern: Pattern, qtype: int, work: Work) -> Optional[Answer]:
        """A pattern name: SRV with region failover, A/AAAA for IP hosts.
        None when nothing matches (NXDOMAIN)."""
        registry = self.registry
        now = work.now
        matches = registry.query(pattern, now, drained=False)
        work.reads.append((QUERY, pattern, matches))
        work.uses(matches)
        every = qtype == dns.ALL_RECORDS
        if qtype == dns.SRV or every:
            found = srv_answer(name, matches, now, self._domain)
            if pattern.region is not None:
                others = registry.failover(pattern, now)
                work.reads.append((FAILOVER, pattern, others))
                work.uses(others)
                if others:
                    found += srv_answer(name, others, now, self._domain, priority=FAILOVER_PRIORITY)
        else:
            found = Answer()
        if qtype == dns.A or every:
            found += address_answer(name, matches, now, dns.A)
        if qtype == dns.AAAA or every:
            found += address_answer(name, matches, now, dns.AAAA)
        if found.answers or matches or self._exists_by_failover(pattern, work):
            return found
        return None

    def _exists_by_failover(self, pattern: Pattern, work: Work) -> bool:
        if pattern.region is None:
            return False
        others = self.registry.failover(pattern, work.now)
        work.reads.append((FAILOVER, pattern, others))
        work.uses(others)
        return bool(others)


def make_resolver(
    authority: common.ResolverBase, forwarder: Optional[common.ResolverBase] = None
) -> resolve.ResolverChain:
    """The resolver a DNS server asks: the authority first, then the
    forwarder (if any) for names outside the domain.

    With no forwarder a name outside the domain fails with a bare
    `error.DomainError`, which `skydns.dns.server` answers with REFUSED.
    """
    resolvers: list[common.ResolverBase] = [authority]
    if forwarder is not None:
        resolvers.append(forwarder)
    return resolve.ResolverChain(resolvers)
