"""DNS counters kept as plain ints, exported to `skydns.metrics` at scrape.

The DNS hot path answers in a few microseconds; ``Counter.labels(...).inc()``
costs about as much again.  So the server counts answers in dicts keyed by
``(transport, qtype, rcode)`` (cache hits in the `AnswerCache`'s own dicts),
buffers latency samples, and a collector registered with the `Metrics`
registry adds what changed since the last scrape to the real families just
before they are read.

Counting rules: a query is counted (``skydns_dns_requests``, by type and
transport) when it is answered, together with its response code
(``skydns_dns_responses``); a packet that cannot be decoded is counted in
``skydns_dns_malformed`` instead.  ``skydns_dns_cache{cache="answer"}``
counts lookups in the answer cache: ``hit``, or ``miss`` (absent or
expired).  Latency (``skydns_dns_request_duration_seconds``) is by source:
``cache`` (a sample of one hit in `LATENCY_SAMPLE`), ``authority`` (the
direct path for names in the domain, as sampled) and ``full`` (the
twisted.names path, every query).  The answer cache's size is exported as
``skydns_dns_cache_entries`` (answers, parses) and ``skydns_dns_cache_bytes``,
what it dropped to stay in bounds as ``skydns_dns_cache_evictions``.
With response rate limiting on, UDP datagrams the limiter kept from an answer are counted in
``skydns_dns_rrl_responses`` by what was sent instead: ``dropped``
(nothing) or ``slipped`` (a TC reply); they are not counted as requests.
Sizes of queries and answers (``skydns_dns_request_size_bytes``,
``skydns_dns_response_size_bytes``) are taken as the latency is: every
answer computed, one UDP cache hit in `LATENCY_SAMPLE`.  The forwarder's
exchanges, failures and latencies by upstream are exported as
``skydns_forward_*``.
Large answers sent in their TC form for want of budget
(`skydns.dns.amplification`) are counted there as ``truncated``, and also
as the requests they answer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Optional

from twisted.names import dns

from skydns.dns.amplification import AmplificationLimiter
from skydns.dns.answercache import AnswerCache
from skydns.dns.rrl import ResponseRateLimiter

#: One cache hit in this many is timed.
LATENCY_SAMPLE = 64
#: Latency samples buffered before they are flushed without a scrape.
_MAX_BUFFERED = 4096

_RCODES = {
    dns.OK: "NOERROR",
    dns.EFORMAT: "FORMERR",
    dns.ESERVER: "SERVFAIL",
    dns.ENAME: "NXDOMAIN",
    dns.ENOTIMP: "NOTIMP",
    dns.EREFUSED: "REFUSED",
    16: "BADVERS",
}


def type_name(qtype: int) -> str:
    """``SRV``, ``A``, ... or ``other`` for types Twisted does not name: a
    metrics label takes a bounded set of values, whatever clients ask."""
    name = dns.QUERY_TYPES.get(qtype) or dns.EXT_QUERIES.get(qtype)
    return name if isinstance(name, str) else "other"


def rcode_name(rcode: int) -> str:
    return _RCODES.get(rcode, str(rcode))


class DNSStats:
    """The DNS server's counters (see the module docstring)."""

    def __init__(
        self,
        cache: Optional[AnswerCache] = None,
        rate_limiter: Optional[ResponseRateLimiter] = None,
        large_limiter: Optional[AmplificationLimiter] = None,
        forwarder: Any = None,
    ) -> None:
        self.cache = cache
        #: The `skydns.dns.forward.Forwarder`, whose counters are exported too.
        self.forwarder = forwarder
        self.rate_limiter = rate_limiter
        self.large_limiter = large_limiter
        #: Answers not from the cache, by (transport, qtype, rcode).
        self.answered: defaultdict[tuple[str, int, int], int] = defaultdict(int)
        self.malformed = 0
        self._latency: list[tuple[str, float]] = []
        self._sizes: list[tuple[str, int, int]] = []
        self._metrics: Any = None
        self._exported: dict[Any, int] = {}

    def answer(self, proto: str, qtype: int, rcode: int) -> None:
        self.answered[(proto, qtype, rcode)] += 1

    def latency(self, source: str, seconds: float) -> None:
        samples = self._latency
        samples.append((source, seconds))
        if len(samples) >= _MAX_BUFFERED:
            self.flush()

    def sizes(self, proto: str, request: int, response: int) -> None:
        """One answered query's sizes in bytes (sampled as `latency` is)."""
        samples = self._sizes
        samples.append((proto, request, response))
        if len(samples) >= _MAX_BUFFERED:
            self.flush()

    def totals(self) -> dict[tuple[str, int, int], int]:
        """All answers so far, cache hits included, by (transport, qtype, rcode)."""
        totals = dict(self.answered)
        cache = self.cache
        if cache is not None:
            for proto, hits in (("udp", cache.udp_hits), ("tcp", cache.tcp_hits)):
                for (qtype, rcode), count in hits.items():
                    key = (proto, qtype, rcode)
                    totals[key] = totals.get(key, 0) + count
        return totals

    def bind(self, metrics: Any) -> None:
        """Export into ``metrics`` (a `skydns.metrics.Metrics`) at each scrape."""
        self._metrics = metrics
        registry = metrics.registry
        registry.register(_Exporter(self))
        # Collectors are read in registration order: move the families we
        # update after the exporter, so a scrape sees this scrape's numbers.
        for family in (
            metrics.dns_queries,
            metrics.dns_responses,
            metrics.dns_latency,
            metrics.dns_cache,
            metrics.dns_cache_entries,
            metrics.dns_cache_bytes,
            metrics.dns_cache_evictions,
            metrics.dns_malformed,
            metrics.dns_rrl,
            metrics.dns_request_size,
            metrics.dns_response_size,
            metrics.forwarded,
            metrics.forward_failures,
            metrics.forward_latency,
        ):
            registry.unregister(family)
            registry.register(family)

    def flush(self) -> None:
        """Add everything counted since the last flush to the metrics."""
        metrics = self._metrics
        if metrics is None:
            del self._latency[:]
            del self._sizes[:]
            return
        samples, self._latency = self._latency, []
        for source, seconds in samples:
            metrics.dns_latency.labels(source).observe(seconds)
        sizes, self._sizes = self._sizes, []
        for proto, request, response in sizes:
            metrics.dns_request_size.labels(proto).observe(request)
            metrics.dns_response_size.labels(proto).observe(response)
        self._flush_forwarder(metrics)
        queries: defaultdict[tuple[str, str], int] = defaultdict(int)
        responses: defaultdict[str, int] = defaultdict(int)
        for (proto, qtype, rcode), count in self.totals().items():
            queries[(type_name(qtype), proto)] += count
            responses[rcode_name(rcode)] += count
        for labels, count in queries.items():
            self._add(("q",) + labels, count, metrics.dns_queries.labels(*labels))
        for name, count in responses.items():
            self._add(("r", name), count, metrics.dns_responses.labels(name))
        cache = self.cache
        if cache is not None:
            hits = sum(cache.udp_hits.values()) + sum(cache.tcp_hits.values())
            self._add("hit", hits, metrics.dns_cache.labels("answer", "hit"))
            misses = cache.misses + cache.expired
            self._add("miss", misses, metrics.dns_cache.labels("answer", "miss"))
            # Misses answered by an entry set aside at a registry change.
            revalidated = metrics.dns_cache.labels("answer", "revalidated")
            self._add("revalidated", cache.revalidated, revalidated)
            metrics.dns_cache_entries.labels("answer").set(len(cache))
            metrics.dns_cache_entries.labels("parse").set(cache.parses)
            metrics.dns_cache_bytes.set(cache.estimated_size())
            evictions = metrics.dns_cache_evictions
            self._add("evicted", cache.evicted, evictions.labels("answer"))
            self._add("parses dropped", cache.parses_dropped, evictions.labels("parse"))
        self._add("malformed", self.malformed, metrics.dns_malformed)
        limiter = self.rate_limiter
        if limiter is not None:
            self._add("dropped", limiter.dropped, metrics.dns_rrl.labels("dropped"))
            self._add("slipped", limiter.slipped, metrics.dns_rrl.labels("slipped"))
        large = self.large_limiter
        if large is not None:
            self._add("truncated", large.truncated, metrics.dns_rrl.labels("truncated"))

    def _flush_forwarder(self, metrics: Any) -> None:
        forwarder = self.forwarder
        if forwarder is None:
            return
        for (upstream, zone), count in list(forwarder.by_upstream.items()):
            self._add(("f", upstream, zone), count, metrics.forwarded.labels(upstream, zone))
        for (upstream, reason), count in list(forwarder.failed_by.items()):
            child = metrics.forward_failures.labels(upstream, reason)
            self._add(("ff", upstream, reason), count, child)
        if forwarder.cache is not None:
            metrics.dns_cache_entries.labels("forward").set(len(forwarder.cache))
        latencies, forwarder.latencies = forwarder.latencies, []
        for upstream, seconds in latencies:
            metrics.forward_latency.labels(upstream).observe(seconds)

    def _add(self, key: Any, total: int, child: Any) -> None:
        delta = total - self._exported.get(key, 0)
        if delta > 0:
            child.inc(delta)
            self._exported[key] = total


class _Exporter:
    """A prometheus collector that yields nothing: reading it flushes."""

    def __init__(self, stats: DNSStats) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        self._stats.flush()
        return []
