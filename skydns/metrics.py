"""Prometheus metrics for one SkyDNS process (served at ``GET /metrics``).

Each `Metrics` owns its own `CollectorRegistry`, so tests and several nodes in
one process never share counters.  Components receive a `Metrics` (or None)
and record into its attributes.  `Metrics.on_applied` is an apply listener
for the registry families; `MeteredResource` wraps the HTTP API's resource
and times requests with the clock it is given (never the wall clock).
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Optional, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map

from skydns.commands import (
    AddCallback,
    Checkpoint,
    Command,
    Drain,
    Expire,
    GrantLease,
    Register,
    Renew,
    RevokeLease,
    Unregister,
)
from skydns.http.kleinbypass import FastRoutes, quick_match, segment_table
from skydns.registry import Applied

#: The ``op`` label of `Metrics.registry_changes` for each command type.
COMMAND_OPS: dict[type, str] = {
    Register: "register",
    Unregister: "unregister",
    Renew: "renew",
    Drain: "drain",
    Expire: "expire",
    AddCallback: "callback",
    GrantLease: "grant",
    RevokeLease: "revoke",
    Checkpoint: "checkpoint",
}

#: HTTP methods counted under their own name; anything else is ``OTHER``.
HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS"})

#: DNS message sizes in bytes (CoreDNS's buckets: the classic 512-byte
#: limit, EDNS sizes, TCP sizes).
_SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000,
                 64000)  # fmt: skip

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0)  # fmt: skip


class Metrics:
    """The metric families SkyDNS exports (names follow CoreDNS where one exists)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # What every Prometheus exporter has: process_* (CPU, memory, file
        # descriptors, start time) and python_* (version, collections).
        _ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            "skydns_build_info", "1, with the versions this process runs.",
            ["version", "python", "twisted"], registry=r,
        )  # fmt: skip
        self.build_info.labels(*_versions()).set(1)
        self.dns_queries = Counter(
            "skydns_dns_requests", "DNS queries received, by query type and transport.",
            ["type", "proto"], registry=r,
        )  # fmt: skip
        self.dns_responses = Counter(
            "skydns_dns_responses", "DNS responses sent, by response code.", ["rcode"], registry=r
        )
        self.dns_latency = Histogram(
            "skydns_dns_request_duration_seconds", "Time to answer a DNS query, by source.",
            ["source"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.dns_request_size = Histogram(
            "skydns_dns_request_size_bytes", "Size of DNS queries answered, by transport "
            "(sampled as the latency: every answer computed, one cache hit in 64).",
            ["proto"], buckets=_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.dns_response_size = Histogram(
            "skydns_dns_response_size_bytes", "Size of DNS responses sent, by transport "
            "(sampled as the requests).", ["proto"], buckets=_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.dns_cache = Counter(
            "skydns_dns_cache", "Answer cache lookups, by cache and result (hit, miss).",
            ["cache", "result"], registry=r,
        )  # fmt: skip
        self.dns_cache_entries = Gauge(
            "skydns_dns_cache_entries",
            "Entries held by the DNS answer cache, its parse cache and the forwarder's cache.",
            ["cache"], registry=r,
        )  # fmt: skip
        self.dns_cache_bytes = Gauge(
            "skydns_dns_cache_bytes", "Estimated bytes held by the DNS answer cache.", registry=r
        )
        self.dns_cache_evictions = Counter(
            "skydns_dns_cache_evictions", "Entries dropped to keep the DNS caches in bounds.",
            ["cache"], registry=r,
        )  # fmt: skip
        self.dns_malformed = Counter(
            "skydns_dns_malformed", "DNS packets that could not be parsed as a query.", registry=r
        )
        self.dns_rrl = Counter(
            "skydns_dns_rrl_responses",
            "UDP answers withheld by response rate limiting: dropped, slipped (sent with TC), "
            "or truncated (a large answer sent with TC for want of budget).",
            ["action"], registry=r,
        )  # fmt: skip
        self.forwarded = Counter(
            "skydns_forward_requests",
            "Questions sent upstream, by upstream and forward zone (. for --nameserver).",
            ["upstream", "zone"], registry=r,
        )  # fmt: skip
        self.forward_failures = Counter(
            "skydns_forward_failures",
            "Upstream exchanges that failed (timeout, error) or answered so that the next "
            "upstream is asked (servfail, refused, notimp, truncated).",
            ["upstream", "reason"], registry=r,
        )  # fmt: skip
        self.forward_latency = Histogram(
            "skydns_forward_request_duration_seconds",
            "Time an upstream took to answer an exchange, by upstream.",
            ["upstream"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.leases = Gauge(
            "skydns_leases", "Leases in the local replica (until revoked).", registry=r
        )
        self.lease_deadlines = Gauge(
            "skydns_lease_deadlines",
            "Renewed deadlines this node holds in memory while it leads (leases and "
            "instances with their own TTL).", registry=r,
        )  # fmt: skip
        self.instances = Gauge(
            "skydns_registered_instances", "Service instances in the local replica.", registry=r
        )
        self.expirations = Counter(
            "skydns_expirations", "Instances removed because their lease ran out.", registry=r
        )
        self.registry_changes = Counter(
            "skydns_registry_changes", "Commands applied to the registry, by operation and status.",
            ["op", "status"], registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "skydns_http_requests", "HTTP API requests, by route, method and status code.",
            ["route", "method", "code"], registry=r,
        )  # fmt: skip
        self.http_latency = Histogram(
            "skydns_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.raft_role = Gauge(
            "skydns_raft_role", "1 for this node's current Raft role, 0 for the others.",
            ["role"], registry=r,
        )  # fmt: skip
        self.raft_term = Gauge("skydns_raft_term", "Current Raft term.", registry=r)
        self.raft_commit = Gauge("skydns_raft_commit_index", "Highest committed index.", registry=r)
        self.raft_applied = Gauge("skydns_raft_applied_index", "Highest applied index.", registry=r)
        self.raft_elections = Counter(
            "skydns_raft_elections", "Elections this node started (campaigns).", registry=r
        )
        self.raft_leader_changes = Counter(
            "skydns_raft_leader_changes", "Times this node saw the leader change.", registry=r
        )
        self.watchers = Gauge(
            "skydns_watchers", "Watch streams and long polls open on this node.", registry=r
        )
        self.watch_events = Counter(
            "skydns_watch_events", "Events sent on watch streams.", registry=r
        )
        self.watch_dropped = Counter(
            "skydns_watch_dropped",
            "Watch streams cut off because their client did not read.", registry=r,
        )  # fmt: skip
        #: (route, method as given, code) -> the label children observe_http records into.
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        #: (command type, status) -> the registry_changes child on_applied counts into.
        self._change_children: dict[tuple[type, str], Any] = {}
        self.fsync_latency = Histogram(
            "skydns_raft_fsync_duration_seconds", "Time to make a batch of log writes durable.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

    def set_role(self, role: str) -> None:
        for each in ("leader", "follower", "candidate", "learner", "replica", "removed"):
            self.raft_role.labels(each).set(1 if each == role else 0)

    def on_applied(self, command: Command, applied: Applied, live: bool) -> None:
        """Apply listener (``cluster.add_apply_listener(metrics.on_applied)``).

        Counts every command this node's replica applies, leader or not
        (``live`` is ignored): each node reports its own replica.
        """
        key = (type(command), applied.status.value)
        child = self._change_children.get(key)
        if child is None:
            # labels() validates and locks on every call: look each child up once.
            child = self._change_children[key] = self.registry_changes.labels(
                COMMAND_OPS.get(key[0], "other"), key[1]
            )
        child.inc()
        if applied.removals and (
            isinstance(command, Expire) or (isinstance(command, RevokeLease) and command.lapsed)
        ):
            self.expirations.inc(len(applied.removals))

    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None:
        """Record one answered HTTP request under its route template."""
        key = (route, method, code)
        children = self._http_children.get(key)
        if children is None:
            label = method.upper()
            if label not in HTTP_METHODS:
                label = "OTHER"
            # labels() validates and locks on every call: look each child up once.
            children = self._http_children[key] = (
                self.http_requests.labels(route, label, str(code)),
                self.http_latency.labels(route),
            )
        children[0].inc()
        children[1].observe(max(0.0, seconds))

    def watched(self, what: str) -> None:
        """Count a watch stream's ``event`` sent, or a stream ``dropped``."""
        if what == "event":
            self.watch_events.inc()
        elif what == "dropped":
            self.watch_dropped.inc()

    def watch_watchers(self, count: Callable[[], int]) -> None:
        """Report the watchers gauge from ``count()`` at each scrape."""
        self.watchers.set_function(count)

    def watch_instances(self, count: Callable[[], int]) -> None:
        """Report the instance gauge from ``count()`` at each scrape."""
        self.instances.set_function(count)

    def watch_leases(self, leases: Callable[[], int], deadlines: Callable[[], int]) -> None:
        """Report the lease gauges from ``leases()`` and ``deadlines()`` at each scrape."""
        self.leases.set_function(leases)
        self.lease_deadlines.set_function(deadlines)

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its Content-Type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ProcessCollector(ProcessCollector):
    """The standard process collector, which also works where ``/proc/stat``
    is hidden (systemd's ``ProcSubset=pid``): the boot time it needs for
    ``process_start_time_seconds`` then comes from the boot-time clock."""

    def _boot_time(self) -> float:
        try:
            return float(super()._boot_time())  # type: ignore[misc]
        except OSError:
            return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def _versions() -> tuple[str, str, str]:
    import platform

    import twisted
    from skydns import __version__

    return __version__, platform.python_version(), twisted.__version__


# -- HTTP ------------------------------------------------------------------------

log = Logger()


class _Clock(Protocol):
    def seconds(self) -> float: ...


class _HTTPObserver(Protocol):
    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None: ...


#: The ``route`` label of a request that matched no route (never the raw path,
#: which would give every scanner's probe its own time series).
UNMATCHED_ROUTE = "unmatched"

#: The ``code`` label of a request whose client went away before the answer
#: (nginx's convention).
CLIENT_CLOSED = 499

_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")
def route_template(rule: str) -> str:
    """A werkzeug rule as an OpenAPI-style template: ``/a/<uuid>`` -> ``/a/{uuid}``."""
    return _CONVERTER.sub(r"{\1}", rule)


class MeteredResource(Resource):
    """Wraps the Klein resource: times every request with the injected clock
    and counts it by route template, method and status code once finished."""

    isLeaf = True

    def __init__(
        self, inner: Resource, url_map: Map, clock: _Clock, metrics: _HTTPObserver,
        routes: Optional[FastRoutes] = None,
    ) -> None:  # fmt: skip
        """``routes``: the `FastRoutes` ``inner`` matches with, whose table
        this then shares (`quick_match` answers a repeated question about
        the same table at once: the route is matched once per request)."""
        super().__init__()
        self._inner = inner
        self._url_map = url_map
        self._clock = clock
        self._metrics = metrics
        self._templates: dict[str, str] = {}
        self._by_length = routes.table if routes is not None else segment_table(url_map)

    def _quick_route(self, path: str, method: str = "GET") -> str | None:
        """The template from the rules' path segments (`skydns.routing`)
        when that is certain; None to ask werkzeug."""
        if self._by_length is None:
            return None
        found = quick_match(self._by_length, path, method)
        return None if found is None else self._template(found[0].rule)

    def _template(self, rule: str) -> str:
        template = self._templates.get(rule)
        if template is None:
            template = self._templates[rule] = route_template(rule)
        return template

    def route(self, request: Request) -> str:
        """The template of the route ``request`` matches, whatever its method."""
        path = "/" + b"/".join(request.postpath or []).decode("utf-8", "replace")
        method = (request.method or b"GET").decode("ascii", "replace")
        quick = self._quick_route(path, method)
        if quick is not None:
            return quick
        adapter = self._url_map.bind("localhost", path_info=path, default_method=method)
        try:
            rule, _ = adapter.match(return_rule=True)
        except MethodNotAllowed as e:
            if not e.valid_methods:
                return UNMATCHED_ROUTE
            try:
                rule, _ = adapter.match(method=sorted(e.valid_methods)[0], return_rule=True)
            except HTTPException:
                return UNMATCHED_ROUTE
        except HTTPException:  # NotFound, or a redirect werkzeug would suggest
            return UNMATCHED_ROUTE
        return self._template(rule.rule)

    def render(self, request: Request) -> Any:
        start = self._clock.seconds()
        route = self.route(request)
        method = (request.method or b"").decode("ascii", "replace")

        def finished(result: object) -> None:
            code = CLIENT_CLOSED if isinstance(result, Failure) else request.code
            self._metrics.observe_http(route, method, code, self._clock.seconds() - start)

        request.notifyFinish().addBoth(finished).addErrback(
            lambda f: log.failure("recording HTTP metrics failed", f)
        )
        return self._inner.render(request)
