"""A wire-level answer cache in front of the `twisted.names` machinery.

A DNS query that repeats is answered from bytes: the cached response gets
the client's ID and the client's question bytes (resolvers randomise the
case of names, "0x20") and is sent, with no `dns.Message` decoded or built.

The key is the request after its ID, lower-cased (one C call): header flags
and counts, name, type, class and the whole OPT record (so the EDNS payload
size, and hence the truncation limit, is part of it).  Lower-casing bytes
outside the name could make two different requests share a key (a type of
0x0041 and one of 0x0061), so a hit also checks the two places where that
can happen byte for byte: the second flags byte and everything from the end
of the name on.  The other header bytes of a cached request hold no letters.
A hit therefore differs from the request that filled the entry only in ID
and name case, and the server answers such requests alike: it resolves the
lower-cased name and copies the client's question in afterwards
(`restore_question`), so the answer owner names, compressed as pointers to
the question, read as the client wrote them.  UDP and TCP have separate
tables, since their size limits differ.

`skydns.dns.wirequery.parse_query` reads the header and the one question
straight from the bytes and decides whether a request may be cached at all.

Each entry carries the time until which it is exact (see
`skydns.dns.authority.Resolution.until`).  A lookup at or after it misses,
and the server builds the entry anew, unless the entry knows where its
TTLs are and the leases they count down to: then, until the answer itself
may change (``lasts``: the first lease's end), the hit rewrites the TTLs
in a copy and keeps it until the next one ticks down (`_retimed`), so an
answer is built once per registry change that alters it, not once per
second.  A registry change drops the entries stored under the dependency
tags it touches (`invalidate`, `skydns.dns.dependencies`); `clear` drops
everything (a whole state installed) and starts a new generation, so an
answer computed before it is never stored after it.  The
size is bounded generationally: when the young table fills, it becomes the
old one and the previous old one is dropped (`evicted` counts what goes);
an entry found in the old table moves back to the young one.  A table is
full at ``max_entries`` entries, or when all tables together (both
generations, the entries set aside, both transports) would take more than
``max_bytes``; then what is set aside goes first.  With ``max_entries`` 0
the bound follows the work: `DEFAULT_MAX_ENTRIES` plus twice the number
of instances (``size_hint``, read at each `clear`), so that every name of
a big registry can stay cached while memory stays bounded.

An entry stored with its ``sources`` (the registry reads the answer
came from, see `skydns.dns.authority.Resolution.sources`) is
set aside by `clear`, not lost: on the next miss for its key the server
calls `revalidate`, which serves it again (and makes it current) only when
its time has not come and those reads give the very same instances now, so
the answer computed anew would be the same bytes.  `query` remembers parses
by key, across clears (they depend on the bytes alone).
"""

from __future__ import annotations

import math
import struct
from collections import defaultdict
from typing import Any, Callable, Optional

from skydns.dns.wirequery import (
    DEFAULT_UDP_LIMIT,
    Query,
    lower_question,
    parse_query,
)

#: Entries per table generation (per transport) at least; two generations
#: are kept.  With ``max_entries`` 0 (auto) the bound follows the registry.
DEFAULT_MAX_ENTRIES = 10000
#: The memory the tables may take by default, in bytes (`estimated_size`).
DEFAULT_MAX_BYTES = 256 << 20
#: What an entry costs beyond its bytes: the key and answer objects, the
#: entry tuple and the dict slot (estimated; bench/dns_qps.py reports RSS).
ENTRY_OVERHEAD = 400

_TTL = struct.Struct("!I")
#: The largest TTL a record can carry (RFC 2181 §8).
_MAX_TTL = 2**31 - 1
_INF = math.inf
_UNKNOWN: Any = object()


#: A cache entry: valid-until time; the response after the ID with the
#: question lower-cased; where the question ends; the request's second flags
#: byte and its bytes from the end of the name on (compared on a hit); the
#: lower-cased question; the statistics key ``(qtype, rcode)``; what the
#: answer was computed from (see `revalidate`), or None; and, for an answer
#: whose TTLs count down to leases' ends, where those TTLs are and the ends
#: (`skydns.dns.encoder.Ttls`, offsets in the whole message) and the time
#: until which the answer holds but for them, else None and the valid-until
#: time again.
Entry = tuple[float, bytes, int, int, bytes, bytes, tuple[int, int], Any, Any, float]


class AnswerCache:
    """Encoded answers by request key, for UDP and for TCP.

    ``seconds`` is the clock (`IReactorTime.seconds`).  Hits are counted in
    plain dicts by ``(qtype, rcode)`` (`udp_hits`, `tcp_hits`) so the hot
    path never touches a metrics library; `skydns.dns.stats` exports them.
    """

    def __init__(
        self,
        seconds: Callable[[], float],
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_udp: int = DEFAULT_UDP_LIMIT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        size_hint: Optional[Callable[[], int]] = None,
    ) -> None:
        self.seconds = seconds
        #: Whether the entry bound follows ``size_hint`` (``max_entries`` 0).
        self.auto = not max_entries
        self.size_hint = size_hint
        self.max_entries = max_entries or DEFAULT_MAX_ENTRIES
        if self.auto and size_hint is not None:
            self.max_entries = DEFAULT_MAX_ENTRIES + 2 * size_hint()
        #: What all tables may take, estimated (see `ENTRY_OVERHEAD`).
        self.max_bytes = max_bytes
        #: Estimated bytes of each transport's young and old tables, and of
        #: an entry on average (for the entries set aside, not summed).
        self._young_bytes = [0, 0]
        self._old_bytes = [0, 0]
        self._average = float(ENTRY_OVERHEAD)
        #: Entries dropped with an old generation; parses dropped.
        self.evicted = 0
        self.parses_dropped = 0
        #: The largest UDP answer (``--max-udp-size``): part of each query's parse.
        self.max_udp = max_udp
        self.generation = 0
        self._young: list[dict[bytes, Entry]] = [{}, {}]
        self._old: list[dict[bytes, Entry]] = [{}, {}]
        #: Entries from before the last `clear`s, for `revalidate`.
        self._aside: list[dict[bytes, Entry]] = [{}, {}]
        #: Answers `revalidate` gave.
        self.revalidated = 0
        #: Entries whose TTLs were brought up to date (`_retimed`).
        self.retimed = 0
        self.udp_hits: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.tcp_hits: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.misses = 0
        self.expired = 0
        #: `parse_query` results by key (see `query`); never cleared by `clear`.
        self._queries: dict[bytes, Optional[Query]] = {}
        #: The keys stored under each dependency tag (see `invalidate`), and
        #: how many (tag, key) pairs that is.
        self._by_tag: dict[Any, set[tuple[bool, bytes]]] = {}
        self._tagged = 0
        #: Entries `invalidate` dropped.
        self.invalidated = 0
        #: The tags of an answer from its ``sources`` (for an entry served
        #: again by `revalidate`), when entries are invalidated by tag.
        self.tagger: Optional[Callable[[Any], Any]] = None

    def __len__(self) -> int:
        return sum(len(t) for t in self._young) + sum(len(t) for t in self._old)

    @property
    def parses(self) -> int:
        """Parsed queries remembered now."""
        return len(self._queries)

    def estimated_size(self) -> int:
        """The bytes the tables take, as `ENTRY_OVERHEAD` estimates (the
        entries set aside at the average size): at most ``max_bytes``."""
        aside = len(self._aside[0]) + len(self._aside[1])
        return sum(self._young_bytes) + sum(self._old_bytes) + int(aside * self._average)

    def answer(self, data: bytes, tcp: bool = False) -> Optional[bytes]:
        """The response to the request ``data`` if a valid one is cached,
        with the request's ID and question; else None (a miss)."""
        key = data[2:].lower()
        young = self._young[tcp]
        entry = young.get(key)
        if entry is None:
            entry = self._old[tcp].get(key)
            if entry is None:
                self.misses += 1
                return None
            self._put(young, tcp, key, entry)
        until, rest, end, flags, tail, question, stat, _, _, _ = entry
        if data[3] != flags or data[end - 5 :] != tail:
            self.misses += 1  # same letters in another case outside the name
            return None
        if until < _INF and self.seconds() >= until:
            entry = self._retimed(entry, self._young[tcp], key)
            if entry is None:
                self.expired += 1  # `store` replaces it once the full path answers
                return None
            rest = entry[1]
        (self.tcp_hits if tcp else self.udp_hits)[stat] += 1
        if data[12:end] == question:
            return data[:2] + rest
        return data[:2] + rest[:10] + data[12:end] + rest[end - 2 :]

    def query(self, data: bytes) -> Optional[Query]:
        """`parse_query` of ``data``, remembered by key: parsing depends on
        the bytes alone, so unlike answers it survives `clear` (a query
        asked again after a registry change is not parsed again).  The
        remembered result is used only when the bytes a lower-cased key may
        confuse (see the module docstring) are the same."""
        key = data[2:].lower()
        found = self._queries.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            if found is None:
                return None
            if data[3] == found.flags and data[found.question_end - 5 :] == found.tail:
                return found  # type: ignore[no-any-return]
        parsed = parse_query(data, self.max_udp)
        if len(self._queries) >= self.max_entries:
            self.parses_dropped += len(self._queries)
            self._queries.clear()
        self._queries[key] = parsed
        return parsed

    def store(
        self,
        query: Query,
        response: bytes,
        until: float,
        generation: int,
        tcp: bool = False,
        sources: Any = None,
        ttls: Any = None,
        lasts: float = -_INF,
        tags: Any = None,
    ) -> bool:
        """Keep ``response`` (the full path's bytes for ``query``) until
        ``until``.  ``generation`` is `generation` as read when the answer
        was computed: if the cache was cleared since, the answer may be stale
        and is not kept.  Any source of answers with a known expiry (the
        authority, a forwarder's cache) may store here.  ``sources``, when
        not None, says what the answer was computed from, for `revalidate`
        after a `clear`.  With ``ttls`` (`skydns.dns.encoder.Ttls`), the
        answer holds until ``lasts`` but for those TTLs, which a hit after
        ``until`` rewrites (`_retimed`) instead of missing.  Returns whether
        it was kept."""
        if generation != self.generation or until <= self.seconds():
            return False
        end = query.question_end
        question = query.question
        if len(response) < end or lower_question(response, end) != question:
            return False  # not an answer to this question
        # The response carries the client's spelling; keep the lower-cased
        # question instead, so a lower-case request needs no patching.
        rest = response[2:12] + question + response[end:]
        stat = (query.qtype, response[3] & 0x0F)
        if ttls is None or lasts <= until:
            ttls, lasts = None, until
        entry = (until, rest, end, query.flags, query.tail, question, stat, sources, ttls, lasts)
        key = query.key
        self._put(self._young[tcp], tcp, key, entry)
        if tags is not None:
            self._index(tcp, key, tags)
        return True

    def _index(self, tcp: bool, key: bytes, tags: Any) -> None:
        by_tag = self._by_tag
        for tag in tags:
            keys = by_tag.get(tag)
            if keys is None:
                keys = by_tag[tag] = set()
            keys.add((tcp, key))
        self._tagged += len(tags)

    def invalidate(self, tags: Any) -> None:
        """Drop the entries stored under any of ``tags`` (what a registry
        change may have altered, see `skydns.dns.dependencies`); the others
        stay.  Entries stored without tags are left to their time.  When the
        index of tags has grown past a bound (it keeps keys of entries since
        dropped), this is a `clear` instead."""
        if self._tagged > 4 * self.max_entries:
            self.clear()
            return
        by_tag = self._by_tag
        young, old = self._young, self._old
        for tag in tags:
            keys = by_tag.pop(tag, None)
            if keys is None:
                continue
            self._tagged -= len(keys)
            for tcp, key in keys:
                for table in (young[tcp], old[tcp]):
                    entry = table.pop(key, None)
                    if entry is not None:
                        self.invalidated += 1
                        cost = len(key) + len(entry[1]) + ENTRY_OVERHEAD
                        sizes = self._young_bytes if table is young[tcp] else self._old_bytes
                        sizes[tcp] = max(0, sizes[tcp] - cost)

    def _retimed(self, entry: Entry, table: Optional[dict[bytes, Entry]], key: bytes) -> Any:
        """``entry``, whose valid-until time has come, with its TTLs brought
        to now and valid until the next of them ticks down, kept in
        ``table`` (when given); None when it has no such TTLs or the answer
        itself may have changed (its ``lasts`` has come)."""
        ttls = entry[8]
        now = self.seconds()
        lasts = entry[9]
        if ttls is None or now >= lasts:
            return None
        rest = bytearray(entry[1])
        until = lasts
        pack_into = _TTL.pack_into
        for offset, expires in ttls:
            left = expires - now
            whole = math.floor(left) if left > 0 else 0
            pack_into(rest, offset - 2, whole if whole < _MAX_TTL else _MAX_TTL)
            tick = expires - whole
            if tick < until:
                until = tick
        if until <= now:
            until = now  # a TTL ticks down this very moment: check again next time
        fresh = (until, bytes(rest), *entry[2:])
        if table is not None:
            table[key] = fresh
        self.retimed += 1
        return fresh

    def _put(self, young: dict[bytes, Entry], tcp: bool, key: bytes, entry: Entry) -> None:
        cost = len(key) + len(entry[1]) + ENTRY_OVERHEAD
        self._average += (cost - self._average) / 1024
        if len(young) >= self.max_entries or self.estimated_size() + cost > self.max_bytes:
            if self._aside[0] or self._aside[1]:
                # What is set aside goes first: it serves only after a change.
                self.evicted += len(self._aside[0]) + len(self._aside[1])
                self._aside = [{}, {}]
            if len(young) >= self.max_entries or self.estimated_size() + cost > self.max_bytes:
                self.evicted += len(self._old[tcp])
                self._old[tcp] = young
                self._old_bytes[tcp] = self._young_bytes[tcp]
                young = self._young[tcp] = {}
                self._young_bytes[tcp] = 0
        young[key] = entry
        self._young_bytes[tcp] += cost

    def clear(self) -> None:
        """Drop every entry (the registry changed); answers being computed
        now will not be stored.  Entries stored with ``sources`` are set
        aside for `revalidate`."""
        self.generation += 1
        # Each entry set aside got into the tables by a query since the last
        # clear (stored, revalidated, or moved from the old table), so this
        # costs at most a dict insert per query, however often it is called.
        for tcp in (0, 1):
            aside = self._aside[tcp]
            young, old = self._young[tcp], self._old[tcp]
            if len(aside) + len(young) + len(old) > 2 * self.max_entries:
                self.evicted += len(aside)
                aside.clear()
            if old:
                aside.update(old)
            if young:
                aside.update(young)
        self._young = [{}, {}]
        self._old = [{}, {}]
        self._young_bytes = [0, 0]
        self._old_bytes = [0, 0]
        self._by_tag = {}
        self._tagged = 0
        if self.auto and self.size_hint is not None:
            self.max_entries = DEFAULT_MAX_ENTRIES + 2 * self.size_hint()

    def revalidate(
        self, data: bytes, query: Query, unchanged: Callable[[Any], bool], tcp: bool = False
    ) -> Optional[bytes]:
        """After a `clear`: the response to ``data`` (parsed as ``query``)
        from an entry set aside, when its TTLs still hold and
        ``unchanged(sources)`` says what it was computed from is still so
        (then the answer computed now would be the same bytes); the entry is
        current again.  None otherwise."""
        key = query.key
        aside = self._aside[tcp]
        entry = aside.get(key)
        if entry is None:
            return None
        until, rest, end, flags, tail, question, _, sources, _, _ = entry
        if sources is None or data[3] != flags or data[end - 5 :] != tail:
            return None
        if until <= self.seconds():
            entry = self._retimed(entry, None, key)
            if entry is None:
                del aside[key]
                return None
            rest = entry[1]
        if not unchanged(sources):
            del aside[key]
            return None
        del aside[key]
        self._put(self._young[tcp], tcp, key, entry)
        if self.tagger is not None:
            self._index(tcp, key, self.tagger(sources))
        self.revalidated += 1
        if data[12:end] == question:
            return data[:2] + rest
        return data[:2] + rest[:10] + data[12:end] + rest[end - 2 :]
