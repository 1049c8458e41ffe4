"""What the authority answers with: a `Resolution` (the records, how long
they hold, what they were computed from), the `Work` that gathers those as an
answer is built, and the two refusals, `NameNotFound` and `QueryRefused`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from twisted.names import dns, error

from skydns.registry import Instance

#: The kinds of registry read a `Work` records (see
#: `skydns.dns.authority.SkyDNSAuthority.unchanged`).
GET = "get"
QUERY = "query"
FAILOVER = "failover"


class NameNotFound(error.AuthoritativeDomainError):
    """NXDOMAIN for a name in our domain.  ``authority`` holds the SOA for the
    authority section (RFC 2308 §2.1).  Not a `DomainError`, so a chain stops
    here instead of asking the next resolver."""

    def __init__(self, name: bytes, authority: Sequence[dns.RRHeader]) -> None:
        super().__init__(name)
        self.name = name
        self.authority = list(authority)
        #: Until when the name stays missing (see `Resolution.until`).
        self.until = math.inf


class QueryRefused(Exception):
    """A question in our domain we will not answer (zone transfers)."""


class RegistryUnavailable(Exception):
    """The registry cannot be vouched for now (``--store etcd`` cut off from
    etcd too long): SERVFAIL.  Not a `DomainError`, which a resolver chain
    would take as "not mine" and pass to the next resolver."""


class Resolution(NamedTuple):
    """An answer from the authority, and what an answer cache needs of it.

    ``until`` is the time until which the same question, with the registry
    unchanged, gets exactly this answer: the first moment a record's TTL
    (the floor of a remaining lease) ticks down or a lease ends;
    ``math.inf`` when no lease is involved.  ``lasts`` is the time until
    which it gets this answer but for TTLs, which count down to each
    `WireRecord`'s ``expires``: the first lease's end, or sooner when the
    answer depends on something else that changes.  ``sources`` is what the
    answer was computed from: None, or a value for `SkyDNSAuthority.unchanged`.
    Records built from instances are `WireRecord`s (`to_header` turns them
    into `dns.RRHeader`s); the others are `dns.RRHeader`s already.
    """

    answers: Sequence[Any]
    authority: Sequence[dns.RRHeader]
    additional: Sequence[Any]
    until: float
    sources: Any
    lasts: float


class Work:
    """What one resolution gathers as it goes: the time it asks the registry
    at, when its answer stops being exact (``until``) and when it changes
    but for TTLs (``lasts``, see `Resolution`), and the registry reads it
    made."""

    __slots__ = ("now", "until", "lasts", "reads")

    def __init__(self, now: float) -> None:
        self.now = now
        self.until = math.inf
        self.lasts = math.inf
        self.reads: list[tuple[str, Any, Any]] = []

    def changes_by(self, moment: float) -> None:
        """The answer may change at ``moment`` for a reason other than TTLs."""
        if moment < self.until:
            self.until = moment
        if moment < self.lasts:
            self.lasts = moment

    def uses(self, instances: Sequence[Instance]) -> None:
        """The answer depends on these instances' leases: it stays exact
        until the first of their TTLs (``floor(expires - now)``) drops."""
        now = self.now
        until = self.until
        lasts = self.lasts
        for instance in instances:
            if not instance.service.no_expire:
                expires = instance.expires
                tick = expires - math.floor(expires - now)
                if tick < until:
                    until = tick
                if expires < lasts:
                    lasts = expires
        self.until = until
        self.lasts = lasts


