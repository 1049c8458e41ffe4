"""Response rate limiting (RRL) for DNS over UDP, off unless configured.

A UDP source address can be forged, so an open DNS server can be made to
send its answers to a victim ("reflection"), and a bigger answer than the
question ("amplification").  Like BIND's, nsd's and Knot's RRL, the
`ResponseRateLimiter` gives each client network a budget: a token bucket
per IPv4 /24 or IPv6 /56 (what one site usually holds, so an attacker
forging addresses within the victim's network gains nothing by varying
them), filling at ``rate`` tokens a second up to a burst of ``rate``.  A
datagram from a network with no token left gets no answer, except every
``slip``-th one, which gets an empty reply with TC set (`truncated_reply`):
a real client, whose address was not forged, asks again over TCP, which a
forger cannot complete and which is never limited.

The table of buckets holds `MAX_PREFIXES` networks at most: the one least
recently heard from is forgotten first (its clients then start afresh with
a full bucket, which is what an idle bucket holds anyway).
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import Callable, Hashable, Optional

from attrs import define, field

from skydns.clock import Clock
from skydns.dns.wirequery import question_end

#: Client networks tracked at most (about 200 bytes each).
MAX_PREFIXES = 100_000
#: By default every second response over the limit is slipped (BIND's default).
DEFAULT_SLIP = 2

#: Nothing is sent instead of the answer.
DROP = b""

_IPV4_MAPPED = "::ffff:"
_IPV6_PREFIX_BYTES = 7  # /56


def prefix_of(host: str) -> Hashable:
    """The network ``host`` (an address as the socket reports it) is
    limited as: its /24 for IPv4 (an IPv4-mapped IPv6 address included),
    its /56 for IPv6.  The two kinds of key never compare equal."""
    if ":" not in host:
        return host[: host.rfind(".")]
    if host.startswith(_IPV4_MAPPED) and "." in host:
        return host[len(_IPV4_MAPPED) : host.rfind(".")]
    address = host.partition("%")[0]  # a link-local address's scope
    try:
        return socket.inet_pton(socket.AF_INET6, address)[:_IPV6_PREFIX_BYTES]
    except OSError:
        return host


def truncated_reply(query: bytes) -> Optional[bytes]:
    """An empty answer to ``query`` with TC set: its ID, opcode, RD and
    question, QR and TC, no records (RFC 1035 §4.1.1).  None when ``query``
    is not a query with one plain question (it then gets nothing)."""
    if len(query) < 17 or query[2] & 0x80:
        return None
    end = question_end(query)
    if not end or end - 16 > 255:
        return None  # not one plain question, or a name over 255 octets (RFC 1035 §3.1)
    flags = 0x82 | (query[2] & 0x79)  # QR, TC; the opcode and RD copied
    return query[:2] + bytes((flags, 0, 0, 1, 0, 0, 0, 0, 0, 0)) + query[12:end]


@define(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    #: Responses over the limit since the last slip.
    over: int = 0


@define
class NetworkBuckets:
    """A token bucket per client network (`prefix_of`), filling at ``rate``
    tokens a second up to ``rate``; at most ``max_prefixes`` of them, the
    network least recently heard from forgotten first."""

    clock: Clock
    rate: int
    max_prefixes: int = MAX_PREFIXES
    _buckets: OrderedDict[Hashable, _Bucket] = field(init=False, factory=OrderedDict, repr=False)
    _seconds: Callable[[], float] = field(init=False, repr=False)
    #: The rate (tokens a second, and the bucket's size) as a float.
    _burst: float = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._seconds = self.clock.seconds
        self._burst = float(self.rate)
        if self.rate < 1:
            raise ValueError(f"rate must be at least 1, not {self.rate}")
        if self.max_prefixes < 1:
            raise ValueError(f"max_prefixes must be at least 1, not {self.max_prefixes}")

    def __len__(self) -> int:
        """Client networks tracked now."""
        return len(self._buckets)

    def spend(self, host: str) -> Optional[_Bucket]:
        """Take a token from ``host``'s network: None when there was one,
        else its (empty) bucket."""
        # prefix_of, inlined for IPv4: this runs for every UDP datagram.
        key = prefix_of(host) if ":" in host else host[: host.rfind(".")]
        now = self._seconds()
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_prefixes:
                buckets.popitem(last=False)
            buckets[key] = _Bucket(self._burst - 1.0, now)
            return None
        buckets.move_to_end(key)
        tokens = bucket.tokens
        elapsed = now - bucket.stamp
        bucket.stamp = now
        if elapsed > 0:  # a clock stepped back refills nothing
            tokens += elapsed * self._burst
            if tokens > self._burst:
                tokens = self._burst
        if tokens >= 1.0:
            bucket.tokens = tokens - 1.0
            return None
        bucket.tokens = tokens
        return bucket


@define
class ResponseRateLimiter:
    """Decides, per UDP datagram, whether its client network may have an
    answer (see the module docstring).  ``clock`` is read once a datagram."""

    clock: Clock
    #: Responses a second per client network, and the burst allowed.
    rate: int
    #: Every this many responses over the limit, one is slipped; 0: none.
    slip: int = DEFAULT_SLIP
    max_prefixes: int = MAX_PREFIXES
    #: Datagrams that got no answer, and that got a TC reply instead.
    dropped: int = 0
    slipped: int = 0
    _table: NetworkBuckets = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.slip < 0:
            raise ValueError(f"slip must not be negative, not {self.slip}")
        self._table = NetworkBuckets(self.clock, self.rate, self.max_prefixes)

    def __len__(self) -> int:
        """Client networks tracked now."""
        return len(self._table)

    def limit(self, data: bytes, host: str) -> Optional[bytes]:
        """None when the datagram ``data`` from ``host`` may be answered as
        usual; else what to send instead: `DROP` (nothing) or a TC reply."""
        bucket = self._table.spend(host)
        if bucket is None:
            return None
        return self._over(bucket, data)

    def _over(self, bucket: _Bucket, data: bytes) -> bytes:
        """Drop the answer, or slip it when it is the bucket's turn."""
        if self.slip:
            bucket.over += 1
            if bucket.over >= self.slip:
                bucket.over = 0
                reply = truncated_reply(data)
                if reply is not None:
                    self.slipped += 1
                    return reply
        self.dropped += 1
        return DROP
