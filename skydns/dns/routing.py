"""Which upstreams a forwarded question goes to (SPEC.md §9).

Forward zones (``--forward-zone corp.example=10.0.0.53,10.0.0.54``) send the
names under a zone to its own servers, the longest matching zone winning;
every other name goes to ``--nameserver``.

Upstream health: an upstream that timed out or failed is *down*.  A down
upstream is left out of the questions that follow, but one question at most
every `PROBE_INTERVAL` seconds is also sent to it (a probe made of real
traffic: in the background while another upstream answers, in its place
when none is healthy); an answer brings it back at once.  When every
upstream of a zone is down and no probe is due, there is no one to ask: the
question fails in microseconds instead of after a timeout (and the
forwarder answers it from stale data, or SERVFAIL).
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen
from twisted.logger import Logger

from skydns.clock import Clock
from skydns.dns.upstreams import Upstream, parse_nameservers
from skydns.dns.zones import in_zone

log = Logger()

#: Seconds between two questions sent to an upstream that is down.
PROBE_INTERVAL = 1.0


@frozen
class ForwardZone:
    """Names under ``name`` (lower case, no final dot; ``b""`` is the root)
    go to ``upstreams``."""

    name: bytes
    upstreams: tuple[Upstream, ...]

    def covers(self, name: bytes) -> bool:
        return not self.name or in_zone(name, self.name)

    @property
    def label(self) -> str:
        """The zone as a metrics label: ``.`` for the root."""
        return self.name.decode("ascii") or "."


def parse_forward_zone(text: str) -> ForwardZone:
    """``ZONE=IP[:PORT][,IP[:PORT]...]``; `ValueError` naming what is wrong."""
    zone, sep, servers = text.partition("=")
    name = zone.strip().rstrip(".").lower()
    if not sep or not name or not servers.strip():
        raise ValueError(f"{text!r}: expected ZONE=IP[:PORT][,IP[:PORT]...]")
    labels = name.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(name) > 253:
        raise ValueError(f"{zone!r} is not a domain name")
    return ForwardZone(name.encode("ascii", "replace"), tuple(parse_nameservers(servers)))


class UpstreamHealth:
    """Which upstreams are down, and when each may be probed next."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: Down upstreams and the time their next probe is due.
        self._down: dict[Upstream, float] = {}

    def is_down(self, upstream: Upstream) -> bool:
        return upstream in self._down

    def healthy(self, upstreams: Sequence[Upstream]) -> list[Upstream]:
        """The upstreams that are not down, in their order."""
        return [u for u in upstreams if u not in self._down]

    def due(self, upstreams: Sequence[Upstream]) -> list[Upstream]:
        """The down upstreams whose probe is due now; taking them makes the
        next probe of each due an interval later."""
        down = self._down
        now = self._clock.seconds()
        probes = []
        for upstream in upstreams:
            due = down.get(upstream)
            if due is not None and now >= due:
                down[upstream] = now + PROBE_INTERVAL
                probes.append(upstream)
        return probes

    def answered(self, upstream: Upstream) -> None:
        if self._down.pop(upstream, None) is not None:
            log.info("upstream {upstream} answers again", upstream=str(upstream))

    def failed(self, upstream: Upstream) -> None:
        if upstream not in self._down:
            self._down[upstream] = self._clock.seconds() + PROBE_INTERVAL
            log.info("upstream {upstream} is down: asking it once a second until it answers",
                     upstream=str(upstream))  # fmt: skip


class UpstreamRouter:
    """The upstreams for a name: its forward zone's (or ``default``), in the
    order health says."""

    def __init__(self, default: Sequence[Upstream], zones: Sequence[ForwardZone],
                 clock: Clock) -> None:  # fmt: skip
        self.default = ForwardZone(b"", tuple(default))
        #: Longest zone first: the first that covers a name is the longest match.
        self.zones = sorted(zones, key=lambda z: len(z.name), reverse=True)
        self.health = UpstreamHealth(clock)

    def zone_of(self, name: bytes) -> ForwardZone:
        key = name.lower().rstrip(b".")
        for zone in self.zones:
            if zone.covers(key):
                return zone
        return self.default

    def plan(self, name: bytes) -> tuple[ForwardZone, list[Upstream], list[Upstream]]:
        """For a question about ``name``: its zone, the upstreams to ask in
        turn, and the down upstreams to probe beside them.  With a healthy
        upstream, due probes go out in the background; with none, they are
        the ones asked (and with none due, nobody is: fail now)."""
        zone = self.zone_of(name)
        healthy = self.health.healthy(zone.upstreams)
        probes = self.health.due(zone.upstreams)
        if healthy:
            return zone, healthy, probes
        return zone, probes, []
