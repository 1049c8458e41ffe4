"""The direct path of `skydns.dns.server`: the requests the answer cache
did not answer.

A plain question (see `skydns.dns.answercache.parse_query`; parsed once per
key, even across registry changes) for a name in the domain is answered
without the twisted.names machinery:

1. by `AnswerCache.revalidate`, when an answer set aside at a registry
   change was computed from registry reads that still give the very same
   instances (`SkyDNSAuthority.unchanged`): the same bytes again;
2. else by `SkyDNSAuthority.resolution` (no Deferreds; records built
   from instances are `WireRecord`s, their RDATA pre-encoded per instance)
   and `encode_answer`, which writes the bytes twisted.names would.

The answer is then cached until its TTLs would tick.  Anything else is
decoded into a `dns.Message` and handed to the ``fallback`` (the server's
twisted.names path) with its `Request`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, Optional

from twisted.logger import Logger
from twisted.names import dns, error

from skydns.dns.answercache import AnswerCache
from skydns.dns.authority import NameNotFound, QueryRefused, SkyDNSAuthority
from skydns.dns.dependencies import answer_tags
from skydns.dns.encoder import Ttls, Unsupported, encode_answer
from skydns.dns.protocols import DEFAULT_MAX_UDP, MAX_TCP_MESSAGE, encode_reply
from skydns.dns.records import to_header
from skydns.dns.request import BuildResponse, Request
from skydns.dns.stats import LATENCY_SAMPLE, DNSStats
from skydns.dns.wirequery import Query, restore_question

log = Logger()


#: `DirectPath._direct` result: the authority does not claim the name.
_NOT_OURS: Any = object()

#: Where a request the direct path does not answer goes: the decoded
#: message, the protocol, the address (None over TCP) and its `Request`.
Fallback = Callable[[dns.Message, Any, Any, Request], None]


class DirectPath:
    """Answers the requests the answer cache missed: `packet_received` is
    what the protocols call.  Owned by `skydns.dns.server.SkyDNSServerFactory`,
    whose twisted.names path is the ``fallback``."""

    def __init__(
        self,
        authority: Optional[SkyDNSAuthority],
        answer_cache: Optional[AnswerCache],
        stats: DNSStats,
        timer: Callable[[], float],
        build_response: BuildResponse,
        can_recurse: bool,
        fallback: Fallback,
        max_udp: int = DEFAULT_MAX_UDP,
    ) -> None:
        self.authority = authority
        self.answer_cache = answer_cache
        self.stats = stats
        self.timer = timer
        self.build_response = build_response
        self.can_recurse = can_recurse
        self.fallback = fallback
        #: Answers until the next one is timed (`_sample`).
        self._countdown = 1
        #: The OPT record of every answer to an EDNS request (never changed).
        self.our_opt = dns._OPTHeader(udpPayloadSize=max_udp)
        #: The OPT record of an answer to a DO query (RFC 3225 §3: DO copied).
        self.our_opt_do = dns._OPTHeader(udpPayloadSize=max_udp, dnssecOK=True)
        #: Signs answers for DO queries (`skydns.dnssec.signer`), when set.
        self.signer: Any = None

    def packet_received(self, protocol: Any, data: bytes, address: Any) -> None:
        """A request the answer cache did not answer (``address`` is None
        over TCP): answer it directly from the authority when it is a plain
        question for our domain, else decode it for the twisted.names path."""
        started = self.timer()
        cache = self.answer_cache
        query = cache.query(data) if cache is not None else None
        cacheable = False
        authority = self.authority
        if query is not None and authority is not None:
            tcp = address is None
            wire = cache.revalidate(data, query, authority.unchanged, tcp)  # type: ignore[union-attr]
            if wire is not None:
                protocol.send_wire(wire, address, len(data))
                self.stats.answer("tcp" if tcp else "udp", query.qtype, wire[3] & 0x0F)
                self.stats.sizes("tcp" if tcp else "udp", len(data), len(wire))
                self._sample(started)
                return
            wire = self._direct(query, data, tcp)
            if wire is _NOT_OURS:
                cacheable = True
            elif wire is not None:
                protocol.send_wire(wire, address, len(data))
                self.stats.sizes("tcp" if tcp else "udp", len(data), len(wire))
                self._sample(started)
                return
        message = dns.Message()
        try:
            message.fromStr(data)
        except Exception:
            self.stats.malformed += 1
            log.debug("undecodable DNS packet ({size} bytes)", size=len(data))
            return
        generation = cache.generation if cache is not None else 0
        request = Request(query, started, generation, cacheable, size=len(data))
        self.fallback(message, protocol, address, request)

    def _sample(self, started: float) -> None:
        """Time one answer in `LATENCY_SAMPLE`, as the cache's hits are."""
        countdown = self._countdown - 1
        if countdown:
            self._countdown = countdown
            return
        self._countdown = LATENCY_SAMPLE
        self.stats.latency("authority", self.timer() - started)

    def _direct(self, query: Query, data: bytes, tcp: bool) -> Any:
        """The answer to a plain question from the authority, encoded, and
        cached.  `_NOT_OURS` for a name outside the domain; None when the
        twisted.names path should answer (an unexpected error, which it logs).
        """
        authority = self.authority
        cache = self.answer_cache
        if authority is None or cache is None or query.qclass not in (dns.IN, dns.ANY):
            return None
        generation = cache.generation
        records: tuple[Sequence[Any], Sequence[Any], Sequence[Any]]
        sources = None
        try:
            resolution = authority.resolution(query.name, query.qtype)
            answers, auth, found, until, sources, lasts = resolution
            records = (answers, auth, found)
            rcode = dns.OK
        except NameNotFound as e:
            records, rcode, until = ([], e.authority, []), dns.ENAME, e.until
            lasts = until
        except QueryRefused:
            records, rcode, until = ([], [], []), dns.EREFUSED, math.inf
            lasts = until
        except error.DomainError as e:
            return _NOT_OURS if type(e) is error.DomainError else None
        except Exception:
            return None
        limit = MAX_TCP_MESSAGE if tcp else query.udp_limit
        if query.dnssec_ok and self.signer is not None and rcode != dns.EREFUSED:
            rcode, records = self.signer.sign(query.name, query.qtype, rcode, records)
            fresh = self.signer.fresh_until()  # signed again well before expiry
            until, lasts = min(until, fresh), min(lasts, fresh)
        answers, auth, found = records
        additional = list(found)
        if query.edns:
            additional.append(self.our_opt_do if query.dnssec_ok else self.our_opt)
        ttls: Optional[Ttls] = [] if lasts > until else None
        try:
            wire = encode_answer(
                data[0] << 8 | data[1],
                data[12 : query.question_end],
                query.name,
                0x80 | query.recursion_desired,
                (0x80 if self.can_recurse else 0) | rcode,
                answers,
                auth,
                additional,
                limit,
                ttls,
            )
        except Unsupported:
            ttls = None
            response = self.build_response(
                data[0] << 8 | data[1],
                [dns.Query(query.name, query.qtype, query.qclass)],
                query.recursion_desired,
                limit,
                query.edns,
                rcode,
                *[[to_header(r) for r in section] for section in records],
            )
            wire = encode_reply(response, limit)
            wire = restore_question(wire, data[12 : query.question_end])
        tags = answer_tags(sources)
        if ttls:
            cache.store(query, wire, until, generation, tcp, sources, tuple(ttls), lasts, tags)
        else:
            cache.store(query, wire, until, generation, tcp, sources, tags=tags)
        self.stats.answer("tcp" if tcp else "udp", query.qtype, rcode)
        return wire
