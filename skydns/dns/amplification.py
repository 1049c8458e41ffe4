"""A budget for large UDP answers, on by default: what keeps SkyDNS from
being an amplifier for reflection attacks without slowing real clients.

A forged UDP query makes a server send its answer to the victim; the
answer's size over the query's is the attacker's gain.  Answers at most
`FACTOR` times their query's size (QUIC's anti-amplification limit,
RFC 9000 §8) are never limited here.  A larger one, a big SRV set say,
spends a token of its client network's bucket (`NetworkBuckets`: an IPv4
/24, an IPv6 /56), which fills at ``rate`` a second.  With none left, the
client gets the answer's header and question with TC set instead, no
bigger than its query: a real client asks again over TCP, which a forger
cannot complete, so no answer is lost, while a flood of forged queries
draws replies about as big as itself (`bench/amplification.py` measures
it).  General response rate limiting (every answer, `skydns.dns.rrl`) is
separate and off unless configured.
"""

from __future__ import annotations

from typing import Optional

from attrs import define, field

from skydns.clock import Clock
from skydns.dns.rrl import DROP, MAX_PREFIXES, NetworkBuckets
from skydns.dns.wirequery import question_end

#: An answer up to this many times its query's size is never limited.
FACTOR = 3
#: Large answers a second per client network by default (``--rrl-large-rate``):
#: a caching resolver asks for a big SRV set once per TTL, and even a site
#: whose clients do not cache loses only a TCP round trip over it.
DEFAULT_RATE = 100

_HEADER = 12


def truncated_answer(reply: bytes) -> Optional[bytes]:
    """``reply`` cut to its header and question, with TC set and no
    records; None when it has no single question to keep."""
    end = question_end(reply)
    if not end:
        return None
    return reply[:2] + bytes((reply[2] | 0x02, reply[3], 0, 1, 0, 0, 0, 0, 0, 0)) + reply[12:end]


@define
class AmplificationLimiter:
    """Decides, per UDP answer, whether it is sent whole or as its TC form
    (see the module docstring)."""

    clock: Clock
    #: Large answers a second per client network, and the burst allowed.
    rate: int = DEFAULT_RATE
    factor: int = FACTOR
    max_prefixes: int = MAX_PREFIXES
    #: Large answers sent as their TC form.
    truncated: int = 0
    _table: NetworkBuckets = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._table = NetworkBuckets(self.clock, self.rate, self.max_prefixes)

    def check(self, reply: bytes, query_size: int, host: str) -> bytes:
        """What to send ``host`` for ``reply``: itself, or its TC form when
        it is large and its network's budget is spent.  ``query_size`` is the
        query's size in bytes; 0 when unknown (the reply's header and
        question are then taken as the query, which a query is at least)."""
        if not query_size:
            query_size = question_end(reply) or _HEADER
        if len(reply) <= self.factor * query_size or self._table.spend(host) is None:
            return reply
        short = truncated_answer(reply)
        self.truncated += 1
        return DROP if short is None else short
