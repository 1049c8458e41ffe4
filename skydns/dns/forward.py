"""Forwarding names outside the SkyDNS domain to upstream nameservers.

`Forwarder` relays a client's question to the upstreams in order, over the
client's own transport (a UDP question goes out over UDP, a TCP one over TCP),
and builds the reply from what comes back:

- it moves to the next upstream when one times out (``timeout``, 2 s), is
  unreachable, or answers SERVFAIL, REFUSED, FORMERR or NOTIMP;
- a truncated (TC) UDP answer is asked again of the same upstream over TCP;
- when no upstream answers within ``total_timeout`` (5 s) the client gets
  SERVFAIL;
- relayed answers carry RA, the client's id, flags and question (its letter
  case included), and an OPT record when the client sent one; the records of
  all three sections are relayed as the upstream sent them, and made to fit
  the client's UDP payload size (TC set when the answer does not fit).

Only clients in ``allow`` (a `ClientNetworks`, ``--forward-allow``) are
served; others get REFUSED with RA clear, so SkyDNS is not an open resolver
(RFC 5358).  At most ``max_pending`` distinct questions are forwarded at a
time; beyond that a new question gets SERVFAIL at once, so a flood of
random names cannot exhaust the process's sockets.

Answers are cached in a `ResponseCache` (RFC 2308 rules; see
`skydns.dns.rcache`).  Identical questions in flight at the same time are sent
upstream once and share the answer.

Loops.  `skydns.dns.upstreams.without_self` keeps SkyDNS's own listening
address out of the upstream list.  At run time two guards catch the loops it
cannot see (an upstream that is our LAN address, or another server that
forwards back to us): a question arriving from the local address of one of
our own upstream sockets is our own forwarded question come back, and is
answered REFUSED at once, which sends the outer query on to the next upstream;
and because identical questions in flight are coalesced, a question that
comes round a longer loop joins the pending one instead of being forwarded
again, so a loop costs one timeout, never a storm of packets.

`skydns.dns.server.SkyDNSServerFactory` calls `Forwarder.handle_query` for
names no resolver claims and sends the reply as it comes (it already fits
the client's payload size).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.logger import Logger
from twisted.names import dns

from skydns.clock import Scheduler as Clock
from skydns.dns.acl import ClientNetworks
from skydns.dns.edns import ClientEDNS
from skydns.dns.exchange import NetworkClient, UpstreamClient
from skydns.dns.rcache import Answer, CacheKey, ResponseCache, soa_capped
from skydns.dns.relay import CLASSIC_UDP_SIZE, relay_reply
from skydns.dns.routing import ForwardZone, UpstreamRouter
from skydns.dns.upstreams import Upstream
from skydns.throttle import LogThrottle

log = Logger()

DEFAULT_TIMEOUT = 2.0
DEFAULT_TOTAL_TIMEOUT = 5.0
#: Distinct questions forwarded at the same time, at most (one socket each).
DEFAULT_MAX_PENDING = 1000
#: The UDP payload size we offer and accept: the DNS Flag Day 2020 value,
#: small enough to avoid IP fragmentation on common paths.
DEFAULT_UDP_PAYLOAD = 1232

#: Upstream answers that mean "ask someone else" (the next upstream).
_TRY_NEXT = frozenset({dns.ESERVER, dns.EREFUSED, dns.EFORMAT, dns.ENOTIMP})
#: Zone transfers are multi-message TCP streams; they are not forwarded.
_NOT_FORWARDED = frozenset({dns.AXFR, dns.IXFR})


#: The ``reason`` of an upstream answer that sends us to the next upstream.
_REASONS = {dns.ESERVER: "servfail", dns.EREFUSED: "refused", dns.ENOTIMP: "notimp"}
#: Exchange latencies held between two scrapes at most.
_MAX_LATENCIES = 4096


class Forwarder:
    """Relays questions to ``upstreams`` (in order), caching the answers.

    ``reactor`` provides the clock (``seconds``, ``callLater``) and, unless a
    ``client`` is given, the UDP and TCP sockets of a `NetworkClient`.
    Counters for metrics: ``forwarded`` (exchanges with an upstream),
    ``failures`` (upstream exchanges that failed or said try-next),
    ``servfails`` (clients answered SERVFAIL), ``coalesced``, ``loops``,
    ``refused`` (clients outside ``allow``) and ``overloaded`` (questions
    answered SERVFAIL because ``max_pending`` were in flight).
    ``allow`` None serves every client.
    """

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        reactor: Any,
        timeout: float = DEFAULT_TIMEOUT,
        cache: ResponseCache | None = None,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        client: UpstreamClient | None = None,
        udp_payload: int = DEFAULT_UDP_PAYLOAD,
        rng: random.Random | None = None,
        allow: ClientNetworks | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        zones: Sequence[ForwardZone] = (),
        attempts: int = 1,
    ) -> None:
        if timeout <= 0 or total_timeout <= 0:
            raise ValueError(f"timeouts must be positive (got {timeout}, {total_timeout})")
        if not CLASSIC_UDP_SIZE <= udp_payload <= 65535:
            raise ValueError(f"UDP payload size {udp_payload} is not within 512-65535")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1 (got {max_pending})")
        #: Rounds through a zone's upstreams before a question fails.
        self.attempts = attempts
        #: Which upstreams each name goes to, and which are down.
        self.router = UpstreamRouter(upstreams, zones, reactor)
        self.allow = allow
        self.max_pending = max_pending
        self._clock: Clock = reactor
        #: Upstream failures are logged once per upstream and kind every 10 s.
        self._trouble = LogThrottle(self._clock)
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.cache = cache
        self._client: UpstreamClient = client if client is not None else NetworkClient(reactor)
        self.udp_payload = udp_payload
        self._rng = rng if rng is not None else random.SystemRandom()
        self._pending: dict[tuple[CacheKey, bool], list[Deferred[Answer | None]]] = {}
        self._lookups: set[Deferred[Any]] = set()
        self.forwarded = 0
        self.failures = 0
        #: Exchanges and failures by upstream (and failure reason), and
        #: exchange latencies not yet exported: `skydns.dns.stats` reads them.
        self.by_upstream: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.failed_by: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.latencies: list[tuple[str, float]] = []
        self.servfails = 0
        self.coalesced = 0
        self.loops = 0
        self.refused = 0
        self.overloaded = 0

    @property
    def upstreams(self) -> list[Upstream]:
        """The upstreams of names outside every forward zone."""
        return list(self.router.default.upstreams)

    @upstreams.setter
    def upstreams(self, upstreams: Sequence[Upstream]) -> None:
        self.router.default = ForwardZone(b"", tuple(upstreams))

    @property
    def client_specific(self) -> bool:
        """Whether a reply may depend on who asked, not on the question
        alone: with ``allow`` a client outside it gets REFUSED.  A server
        must then not hand one client's reply to another (the DNS server's
        answer cache, keyed by the question, does not keep such replies)."""
        return self.allow is not None

    def handle_query(
        self, message: dns.Message, protocol: object, address: tuple[str, int] | None
    ) -> Deferred[dns.Message]:
        """`resolve` for a `DNSServerFactory.handleQuery` call: ``address`` is
        None for a TCP client (Twisted's convention), whose peer address is
        then read from the protocol's transport."""
        tcp = address is None
        source: tuple[str, int] | None = address
        if tcp:
            transport = getattr(protocol, "transport", None)
            peer = transport.getPeer() if transport is not None else None
            if peer is not None and hasattr(peer, "port"):
                source = (peer.host, peer.port)
        return self.resolve(message, tcp=tcp, source=source)

    def resolve(
        self, message: dns.Message, tcp: bool, source: tuple[str, int] | None = None
    ) -> Deferred[dns.Message]:
        """The reply to the client's query ``message``, ready to send as it is.

        Never fails: every failure becomes a SERVFAIL reply.  ``tcp`` says the
        client's transport; ``source`` is the client's address, checked
        against ``allow`` (an unknown source is refused when there is one) and
        used to detect our own forwarded queries coming back.
        """
        edns = ClientEDNS.of(message)
        if self.allow is not None and (source is None or not self.allow.allows(source[0])):
            self.refused += 1
            log.debug(
                "refusing to forward for {source}: not in --forward-allow",
                source="unknown" if source is None else f"{source[0]}:{source[1]}",
            )
            refused = self._reply(message, Answer(dns.EREFUSED), tcp, edns)
            refused.recAv = 0  # RFC 1035 §4.1.1: recursion is not available to this client.
            return succeed(refused)
        if len(message.queries) != 1:
            return succeed(self._reply(message, Answer(dns.EFORMAT), tcp, edns))
        query = message.queries[0]
        if query.type in _NOT_FORWARDED:
            return succeed(self._reply(message, Answer(dns.EREFUSED), tcp, edns))
        if source is not None and self._client.is_own_address(source[0], source[1]):
            self.loops += 1
            log.warn(
                "refusing {name} from {source}: our own forwarded query came back (loop)",
                name=query.name.name.decode("ascii", "replace"),
                source=f"{source[0]}:{source[1]}",
            )
            return succeed(self._reply(message, Answer(dns.EREFUSED), tcp, edns))
        key = CacheKey.for_query(query, edns.dnssec_ok)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is None and self.cache.failing(key):
                # Failed moments ago (RFC 9520): stale data or SERVFAIL, now.
                cached = self.cache.stale(key)
                if cached is None:
                    return succeed(self._reply(message, None, tcp, edns))
            if cached is not None:
                return succeed(self._reply(message, cached, tcp, edns))
        d = self._shared_lookup(key, query, tcp, edns, bool(message.checkingDisabled))
        return d.addCallback(lambda answer: self._reply(message, answer, tcp, edns))

    def _shared_lookup(
        self, key: CacheKey, query: dns.Query, tcp: bool, edns: ClientEDNS, cd: bool
    ) -> Deferred[Answer | None]:
        """One upstream lookup per (question, transport) in flight; late askers wait for it."""
        waiter: Deferred[Answer | None] = Deferred()
        pending = self._pending.get((key, tcp))
        if pending is not None:
            self.coalesced += 1
            pending.append(waiter)
            return waiter
        if len(self._pending) >= self.max_pending:
            self.overloaded += 1
            if self.overloaded % 1000 == 1:
                log.warn(
                    "{count} questions in flight upstream: answering SERVFAIL "
                    "({overloaded} so far)",
                    count=len(self._pending),
                    overloaded=self.overloaded,
                )
            return succeed(None)
        waiters = self._pending[(key, tcp)] = [waiter]

        def done(answer: Answer | None) -> None:
            del self._pending[(key, tcp)]
            if self.cache is not None:
                if answer is not None:
                    self.cache.put(key, answer)
                else:  # no upstream could answer: what we had, if anything (RFC 8767)
                    self.cache.fail(key)
                    answer = self.cache.stale(key)
            for w in waiters:
                w.callback(answer)

        def failed(failure: Any) -> None:
            if not failure.check(CancelledError):
                log.failure("forwarding {name} failed", failure, name=repr(query.name.name))
            done(None)

        lookup = self._track(Deferred.fromCoroutine(self._ask_upstreams(query, tcp, edns, cd)))
        lookup.addCallbacks(done, failed)
        return waiter

    def _track(self, lookup: Deferred[Any]) -> Deferred[Any]:
        """``lookup``, held until it ends, so that `stop` can cancel it."""
        self._lookups.add(lookup)

        def finished(result: Any) -> Any:
            self._lookups.discard(lookup)
            return result

        return lookup.addBoth(finished)

    def stop(self) -> None:
        """Abandon every lookup in flight (their clients get SERVFAIL), closing
        their sockets and timers: for the server's ``stopService``."""
        for lookup in list(self._lookups):
            lookup.cancel()

    async def _ask_upstreams(
        self, query: dns.Query, tcp: bool, edns: ClientEDNS, cd: bool
    ) -> Answer | None:
        """The first usable answer from the upstreams in order, or None when none
        answers within ``total_timeout``."""
        deadline = self._clock.seconds() + self.total_timeout
        for _ in range(self.attempts):
            answer = await self._one_round(query, tcp, edns, cd, deadline)
            if answer is not None:
                return answer
        return None

    async def _one_round(self, query: dns.Query, tcp: bool, edns: ClientEDNS, cd: bool,
                         deadline: float) -> Answer | None:  # fmt: skip
        """Each upstream to ask, in turn, once."""
        zone, order, probes = self.router.plan(query.name.name)
        for probe in probes:  # beside the answer: is it back?
            self.by_upstream[(str(probe), zone.label)] += 1
            self._track(Deferred.fromCoroutine(
                self._exchange(probe, query, tcp, edns, cd, deadline)
            )).addErrback(lambda failure: failure.trap(CancelledError) and None)  # stop()
        for upstream in order:
            self.by_upstream[(str(upstream), zone.label)] += 1
            response = await self._exchange(upstream, query, tcp, edns, cd, deadline)
            if response is not None and response.trunc and not tcp:
                # RFC 1035 §4.2.1 / RFC 7766 §5: a truncated UDP answer is retried over TCP.
                response = await self._exchange(upstream, query, True, edns, cd, deadline)
            if response is None:
                continue
            if response.trunc or response.rCode in _TRY_NEXT:
                reason = "truncated" if response.trunc else _REASONS.get(response.rCode, "rcode")
                self._failed(
                    upstream, reason, "answered rcode {rcode}{tc}; trying the next",
                    rcode=response.rCode, tc=" with TC over TCP" if response.trunc else "",
                )  # fmt: skip
                continue
            return soa_capped(Answer.from_message(response))
        return None

    async def _exchange(
        self,
        upstream: Upstream,
        query: dns.Query,
        tcp: bool,
        edns: ClientEDNS,
        cd: bool,
        deadline: float,
    ) -> dns.Message | None:
        """One question to one upstream, bounded by the per-upstream timeout and
        the overall deadline; None when it fails in any way."""
        remaining = min(self.timeout, deadline - self._clock.seconds())
        if remaining <= 0:
            return None
        request = dns.Message(id=self._rng.getrandbits(16), recDes=1, checkingDisabled=int(cd))
        request.queries = [dns.Query(query.name.name, query.type, query.cls)]
        if edns.present:
            request.additional = [
                dns._OPTHeader(  # type: ignore[list-item]
                    udpPayloadSize=self.udp_payload, dnssecOK=edns.dnssec_ok
                )
            ]
        self.forwarded += 1
        name = str(upstream)
        started = self._clock.seconds()
        d = self._client.query(upstream, request, tcp)
        d.addTimeout(remaining, self._clock)  # type: ignore[arg-type]
        try:
            response = await d
        except CancelledError:
            raise  # stop(): not this upstream's fault, and no next one to try
        except TimeoutError:
            self.router.health.failed(upstream)
            self._failed(
                upstream, "timeout", "did not answer within {timeout:.1f}s ({proto})",
                timeout=remaining, proto="tcp" if tcp else "udp",
            )  # fmt: skip
        except Exception as e:  # any failure of one upstream means: try the next one
            self.router.health.failed(upstream)
            self._failed(
                upstream, "error", "failed ({proto}): {error}",
                proto="tcp" if tcp else "udp", error=repr(e),
            )  # fmt: skip
        else:
            self.router.health.answered(upstream)
            if len(self.latencies) < _MAX_LATENCIES:
                self.latencies.append((name, self._clock.seconds() - started))
            return response
        return None

    def _failed(self, upstream: Upstream, reason: str, what: str, **fields: Any) -> None:
        """Count a failed exchange under ``reason`` (a metrics label); log it
        unless one like it (same upstream, same ``what``) was logged less
        than 10 s ago."""
        self.failures += 1
        self.failed_by[(str(upstream), reason)] += 1
        held = self._trouble.allow((upstream, what))
        if held is not None:
            log.info(
                "upstream {upstream} " + what + " ({held} more like it not logged)",
                upstream=str(upstream), held=held, **fields,
            )  # fmt: skip

    def _reply(
        self, request: dns.Message, answer: Answer | None, tcp: bool, edns: ClientEDNS
    ) -> dns.Message:
        """The client's reply (`skydns.dns.relay`); SERVFAIL for no answer."""
        if answer is None:
            self.servfails += 1
            answer = Answer(dns.ESERVER)
        return relay_reply(request, answer, tcp, edns, self.udp_payload)
