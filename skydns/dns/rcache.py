"""A bounded TTL cache for forwarded DNS answers (RFC 1035 §7.4, RFC 2308).

Answers relayed from an upstream nameserver are kept for the minimum TTL of
their answer records, negative answers (NXDOMAIN and NODATA) for the negative
TTL of RFC 2308 §5, and served with every TTL counted down by the time spent
in the cache (the SOA of a negative answer from the negative TTL).  The
cache holds at most ``max_entries`` answers and forgets the
least recently used one first.  SERVFAIL and other errors are never cached:
the forwarder retries its upstreams for the next question instead (RFC 2308
§7 allows, but does not require, caching them).

This cache is independent of the answer cache of the authority: it only sees
names outside the SkyDNS domain, and it is not flushed when the registry
changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from attrs import frozen
from twisted.names import dns

from skydns.clock import Clock

#: Cap on the TTL of a positive answer (one day, like BIND's max-cache-ttl default is a week;
#: a day keeps a stale upstream mistake from living too long).
DEFAULT_MAX_TTL = 86400
#: Cap on a negative answer's TTL: RFC 2308 §5 suggests one to three hours.
DEFAULT_MAX_NEGATIVE_TTL = 10800
DEFAULT_MAX_ENTRIES = 10000
#: The TTL of an answer served stale (RFC 8767 §4).
STALE_TTL = 30
#: How long a resolution failure is remembered: 1 s, doubling while the
#: question keeps failing, up to 5 s (RFC 9520 §3).
FAILURE_FIRST = 1.0
FAILURE_MAX = 5.0


@frozen
class CacheKey:
    """What an answer is cached under: the question, its name lower-cased.

    ``dnssec_ok`` is part of the key because an answer asked for with the DO
    bit carries RRSIG records that a DO=0 client must not receive, and the
    other way round (RFC 3225 §3).
    """

    name: bytes
    type: int
    cls: int
    dnssec_ok: bool = False

    @classmethod
    def for_query(cls, query: dns.Query, dnssec_ok: bool = False) -> CacheKey:
        return cls(query.name.name.lower(), query.type, query.cls, dnssec_ok)


@frozen
class Answer:
    """An upstream answer as the forwarder relays it: response code, the flags
    that belong to the data, and the three record sections (OPT left out)."""

    rcode: int
    answers: tuple[dns.RRHeader, ...] = ()
    authority: tuple[dns.RRHeader, ...] = ()
    additional: tuple[dns.RRHeader, ...] = ()
    authentic_data: bool = False

    @classmethod
    def from_message(cls, message: dns.Message) -> Answer:
        """The answer carried by an upstream response ``message``."""
        return cls(
            rcode=message.rCode,
            answers=tuple(message.answers),
            authority=tuple(message.authority),
            additional=tuple(r for r in message.additional if r.type != dns.OPT),
            authentic_data=bool(message.authenticData),
        )

    def stale(self) -> Answer:
        """This answer with every TTL `STALE_TTL` (RFC 8767 §4)."""
        return Answer(self.rcode, _with_ttl(self.answers), _with_ttl(self.authority),
                      _with_ttl(self.additional), self.authentic_data)  # fmt: skip

    def aged(self, elapsed: int) -> Answer:
        """This answer with every TTL lowered by ``elapsed`` seconds (never below 0)."""
        if elapsed <= 0:
            return self
        return Answer(
            self.rcode,
            _aged(self.answers, elapsed),
            _aged(self.authority, elapsed),
            _aged(self.additional, elapsed),
            self.authentic_data,
        )


def _is_negative(answer: Answer) -> bool:
    return answer.rcode == dns.ENAME or (answer.rcode == dns.OK and not answer.answers)


def soa_capped(answer: Answer, max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL) -> Answer:
    """``answer``, and if it is negative, with the TTL of its authority SOA
    records lowered to the negative TTL.

    RFC 2308 §5: the SOA of a negative answer carries the negative TTL and
    counts down from it, so a cache downstream keeps the negative answer no
    longer than we do, even when the upstream sent the SOA's own TTL.
    """
    ttl = negative_ttl(answer) if _is_negative(answer) else None
    if ttl is None:
        return answer
    ttl = min(ttl, max_negative_ttl)
    return Answer(
        answer.rcode,
        answer.answers,
        tuple(
            dns.RRHeader(r.name.name, r.type, r.cls, ttl, r.payload, r.auth)
            if r.type == dns.SOA and r.ttl > ttl
            else r
            for r in answer.authority
        ),
        answer.additional,
        answer.authentic_data,
    )


def _aged(records: Iterable[dns.RRHeader], elapsed: int) -> tuple[dns.RRHeader, ...]:
    return tuple(
        dns.RRHeader(
            name=r.name.name,
            type=r.type,
            cls=r.cls,
            ttl=max(0, r.ttl - elapsed),
            payload=r.payload,
            auth=r.auth,
        )
        for r in records
    )


def _with_ttl(records: Iterable[dns.RRHeader], ttl: int = STALE_TTL) -> tuple[dns.RRHeader, ...]:
    return tuple(dns.RRHeader(r.name.name, r.type, r.cls, ttl, r.payload, r.auth)
                 for r in records)  # fmt: skip


def negative_ttl(answer: Answer) -> int | None:
    """The RFC 2308 §5 negative TTL: min(SOA TTL, SOA MINIMUM) of the SOA in the
    authority section, or None when there is no SOA (then it is not cached, §5)."""
    ttls: list[int] = []
    for record in answer.authority:
        payload = record.payload
        if record.type == dns.SOA and isinstance(payload, dns.Record_SOA):
            ttls.append(min(record.ttl, payload.minimum))
    return min(ttls) if ttls else None


def cache_ttl(
    answer: Answer,
    max_ttl: int = DEFAULT_MAX_TTL,
    max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL,
) -> int:
    """How long ``answer`` may be cached, in seconds; 0 means not at all.

    - NOERROR with answer records: the minimum TTL of the answer section.
    - NXDOMAIN, or NOERROR without answer records (NODATA): the negative TTL
      of RFC 2308 §5, and not cached without a SOA.  An NXDOMAIN reached
      through a CNAME keeps the CNAME no longer than its own TTL.
    - anything else (SERVFAIL, REFUSED, FORMERR, ...): not cached.
    """
    if _is_negative(answer):
        ttl = negative_ttl(answer)
        if ttl is None:
            return 0
        if answer.answers:
            ttl = min(ttl, min(r.ttl for r in answer.answers))
        return max(0, min(ttl, max_negative_ttl))
    if answer.rcode == dns.OK:
        return max(0, min(min(r.ttl for r in answer.answers), max_ttl))
    return 0


@frozen
class _Entry:
    answer: Answer
    stored_at: float
    expires_at: float


class ResponseCache:
    """A least-recently-used map from `CacheKey` to `Answer`, with expiry.

    ``hits`` and ``misses`` count lookups (an expired entry is a miss);
    ``evictions`` counts entries dropped to respect ``max_entries``.  An
    expired entry is kept ``serve_stale`` seconds more, for `stale` to
    give when no upstream answers (RFC 8767); a question that found no
    upstream is remembered a few seconds by `fail` (RFC 9520), so the next
    ones do not wait for upstreams again.
    """

    def __init__(
        self,
        clock: Clock,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_ttl: int = DEFAULT_MAX_TTL,
        max_negative_ttl: int = DEFAULT_MAX_NEGATIVE_TTL,
        serve_stale: float = 0.0,
    ) -> None:
        if max_entries < 0:
            raise ValueError(f"cache size {max_entries} must not be negative")
        self._clock = clock
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self.serve_stale = serve_stale
        #: Questions that found no upstream: (until when, for how long).
        self._failures: OrderedDict[CacheKey, tuple[float, float]] = OrderedDict()
        self.stale_served = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Answer | None:
        """The cached answer for ``key`` with TTLs counted down, or None."""
        entry = self._entries.get(key)
        now = self._clock.seconds()
        if entry is None or now >= entry.expires_at:
            if entry is not None and now >= entry.expires_at + self.serve_stale:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.answer.aged(int(now - entry.stored_at))

    def put(self, key: CacheKey, answer: Answer) -> int:
        """Cache ``answer`` under ``key`` if RFC 2308 allows it.

        Returns the TTL it is kept for, 0 when it is not cached.
        """
        ttl = cache_ttl(answer, self.max_ttl, self.max_negative_ttl)
        if ttl <= 0 or self.max_entries == 0:
            return 0
        answer = soa_capped(answer, self.max_negative_ttl)
        now = self._clock.seconds()
        self._entries[key] = _Entry(answer, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
        return ttl

    def stale(self, key: CacheKey) -> Answer | None:
        """The expired answer for ``key`` with TTLs `STALE_TTL`, while it is
        within ``serve_stale`` seconds of its expiry; None otherwise."""
        entry = self._entries.get(key)
        now = self._clock.seconds()
        if entry is None or not entry.expires_at <= now < entry.expires_at + self.serve_stale:
            return None
        self.stale_served += 1
        return entry.answer.stale()

    def fail(self, key: CacheKey) -> None:
        """Remember that ``key`` found no upstream: 1 s, doubling up to 5 s
        while it keeps failing."""
        now = self._clock.seconds()
        previous = self._failures.pop(key, None)
        length = FAILURE_FIRST
        if previous is not None and now < previous[0] + previous[1]:
            length = min(previous[1] * 2, FAILURE_MAX)
        self._failures[key] = (now + length, length)
        while len(self._failures) > max(self.max_entries, 1):
            self._failures.popitem(last=False)

    def failing(self, key: CacheKey) -> bool:
        """Whether ``key`` found no upstream moments ago (see `fail`)."""
        failed = self._failures.get(key)
        return failed is not None and self._clock.seconds() < failed[0]

    def clear(self) -> None:
        self._entries.clear()
        self._failures.clear()
