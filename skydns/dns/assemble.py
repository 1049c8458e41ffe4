"""Building the DNS side of a node from its options: the authority over
the registry, reverse lookups, the forwarder, the limits, the DNSSEC signer
and the `DNSService` that serves them.  `skydns.tap` builds it for the node,
`skydns.dns.worker` for each ``--dns-workers`` process (the same answers
from a copy of the registry), so both are built by this one function."""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.names.resolve import ResolverChain

from skydns.config import HostPort
from skydns.dns.acl import needed
from skydns.dns.amplification import AmplificationLimiter
from skydns.dns.authority import SkyDNSAuthority
from skydns.dns.exchange import NetworkClient
from skydns.dns.forward import Forwarder
from skydns.dns.rcache import ResponseCache
from skydns.dns.reverse import ReverseResolver
from skydns.dns.rrl import ResponseRateLimiter
from skydns.dns.server import answer_cache_for
from skydns.dns.service import DNSService
from skydns.names import is_ip
from skydns.patterns import ORDERS
from skydns.registry import Registry


def nameservers(options: Any) -> list[tuple[str, str]]:
    """The apex NS records: every initial member with an IP address, else this node."""
    dns_host = options["dns"].host
    if options["peers"] is None:
        return [(options["node-id"], dns_host)]
    listed = []
    for peer in options["peers"]:
        host = dns_host if peer.node_id == options["node-id"] else peer.address.host
        if is_ip(host):
            listed.append((peer.node_id, host))
    return listed or [(options["node-id"], dns_host)]


def build_dns(options: Any, registry: Registry, reactor: Any, metrics: Any = None,
              reuse_port: bool = False, tls: bool = True,
              unavailable: Optional[Callable[[], Optional[str]]] = None) -> DNSService:  # fmt: skip
    """The DNS service of a node started with ``options`` (`skydns.options`),
    answering from ``registry``; with ``reuse_port`` its sockets share the
    address with others (SO_REUSEPORT); without ``tls``, no DNS over TLS;
    while ``unavailable()`` gives a reason, the domain's names get SERVFAIL."""
    tls_settings = (options["dns-tls"], options["dns-tls-context"]) if tls else (None, None)
    dns_address: HostPort = options["dns"]
    names = ORDERS[options["names"]]
    authority = SkyDNSAuthority(registry, reactor, options["domain"], nameservers(options),
                                options["negative-ttl"], names, unavailable)  # fmt: skip
    forwarder = None
    if options["upstreams"] is not None:
        cache = ResponseCache(reactor, max_entries=options["cache-size"],
                              serve_stale=options["serve-stale"])
        allow = needed(options["forward-allow"], dns_address.host)
        forwarder = Forwarder(options["upstreams"], reactor, cache=cache, allow=allow,
                              zones=options["forward-zone"], timeout=options["forward-timeout"],
                              attempts=options["forward-attempts"],
                              total_timeout=options["forward-timeout"] * options["forward-attempts"]
                              * max(1, len(options["upstreams"]),
                                    *(len(z.upstreams) for z in options["forward-zone"])),
                              client=NetworkClient(reactor, options["forward-tls-trust"]))
    # The authority first (the server's fast path looks for it there), then
    # PTR for registered addresses; names neither claims go to the forwarder.
    reverse = ReverseResolver(registry, reactor, options["domain"], options["reverse-zone"],
                              authority.soa, authority.nameservers)  # fmt: skip
    resolver = ResolverChain([authority, reverse])
    limiter = None
    if options["rrl-rate"]:
        limiter = ResponseRateLimiter(reactor, options["rrl-rate"], options["rrl-slip"])
    large = None
    if options["rrl-large-rate"]:
        large = AmplificationLimiter(reactor, options["rrl-large-rate"])
    dns_service = DNSService(
        resolver, dns_address.host, dns_address.port, reactor=reactor,
        answer_cache=answer_cache_for(authority, reactor, options["dns-cache-entries"],
                                      options["max-udp-size"], options["dns-cache-memory"] << 20),
        max_udp_size=options["max-udp-size"],
        forwarder=forwarder, idle_timeout=options["tcp-idle-timeout"], metrics=metrics,
        max_tcp_connections=options["max-tcp-connections"], rate_limiter=limiter,
        large_limiter=large, tls=tls_settings, reuse_port=reuse_port,
    )
    if options["dnssec"] is not None:
        dns_service.factory.direct.signer = dnssec_signer(options["dnssec"], reactor,
                                                          options["domain"], authority, reverse)
    return dns_service


def dnssec_signer(key: Any, reactor: Any, domain: str, authority: Any,
                  reverse: Any = None) -> Any:  # fmt: skip
    """The signer of DO answers: ``key`` for the domain and every reverse
    zone of ``reverse`` (a `ReverseResolver`), which say which types a name
    has (a denial lists them)."""
    from twisted.names import dns

    from skydns.dnssec.signer import Signer

    def types_at(name: bytes) -> set[int]:
        try:
            found = authority.resolution(name, dns.ALL_RECORDS)
        except Exception:
            return set()
        return {record.type for record in found.answers}

    zones = {domain: types_at}
    for zone in reverse.zones if reverse is not None else ():
        zones[zone.decode("ascii")] = reverse.types_at
    return Signer(key, reactor, zones)
