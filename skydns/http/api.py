"""The HTTP API (SPEC.md §2): a Klein app over an `ICluster`.

Writes become `skydns.commands` values carrying ``now = clock.seconds()`` and
go through ``cluster.propose``; reads come from the local replica
(``cluster.registry``), after ``cluster.read_barrier()`` when the client asks
for ``?consistent=true``.  Every answer, error or not, is a JSON body.

The secret guards every ``/skydns/`` path.  ``/health``, ``/ready`` and
``/metrics`` are deliberately left open: load balancers, orchestrators and
Prometheus scrapers probe them without credentials, and they reveal nothing
about the registered services.
"""

from __future__ import annotations

from typing import Any, NoReturn, Optional, cast

from attrs import define, field
from klein import Klein
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

from skydns.bodies import MAX_UUID_KEY, ValidationError, parse_callback, parse_patch, parse_service
from skydns.clock import Scheduler as Clock
from skydns.commands import AddCallback, Command, Drain, Register, Renew, Unregister
from skydns.http.guard import check_secret, guarded
from skydns.http.kleinbypass import APIResource, FastRoutes
from skydns.http.leases import LeaseRoutes
from skydns.http.limits import MAX_BODY
from skydns.http.listing import page, page_arguments, render_list
from skydns.http.members import change_member, parse_add
from skydns.http.responses import (
    RETRY_AFTER,
    APIError,
    proposal_failed,
    render_error,
    render_json,
)
from skydns.http.seams import Cluster, MetricsRenderer, read_barrier
from skydns.http.watching import long_poll, serve_watch
from skydns.metrics import MeteredResource
from skydns.names import POSITIONS, Service
from skydns.patterns import Pattern, PatternError, parse_query
from skydns.presentation import callback_json, dns_names, not_ready_reason, service_json
from skydns.registry import MAX_INSTANCES_PER_NAME, Applied, Instance, Outcome
from skydns.watch.hub import WatchHub

#: Seconds a consistent read or a membership change may wait for the cluster
#: before the client gets 503.  A write waits as long as the cluster lets
#: it: `Cluster.propose` times out by itself.
DEFAULT_PROPOSE_TIMEOUT = 10.0

@define(slots=False)  # Klein binds itself to the instance through an attribute
class API:
    """The routes of SPEC.md §2 and §7 over ``cluster``; use `resource` to serve it."""

    app = Klein()
    # werkzeug would answer "//" (an id holding an encoded "/") with a 308
    # to the merged path: such a path names no resource.
    app.url_map.merge_slashes = False

    cluster: Cluster
    clock: Clock
    domain: str
    secret: Optional[str] = None
    metrics: Optional[MetricsRenderer] = None
    propose_timeout: float = DEFAULT_PROPOSE_TIMEOUT
    max_instances_per_name: int = MAX_INSTANCES_PER_NAME
    names: tuple[str, ...] = POSITIONS
    #: This node's DNS address (HOST:PORT), shown in the cluster status.
    dns_address: Optional[str] = None
    #: Watchers of this node's registry (one is made when none is given).
    watches: Optional[WatchHub] = None
    _secret_bytes: Optional[bytes] = field(init=False, default=None)
    _leases: LeaseRoutes = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._leases = LeaseRoutes(self.cluster, self.clock, self._propose)
        if self.secret:
            self._secret_bytes = self.secret.encode("utf-8")
        if self.watches is None and self.cluster is not None:
            self.watches = WatchHub(self.cluster.registry)

    def resource(self) -> Resource:
        """The twisted.web resource serving this API (metered when there are metrics)."""
        routes = FastRoutes(self.app)
        inner = APIResource(routes, self._error, cast(IReactorTime, self.clock))
        if self.metrics is None:
            return inner
        return MeteredResource(inner, self.app.url_map, self.clock, self.metrics, routes)

    # -- plumbing ------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        """Raise a 401 `APIError` unless the request carries the secret."""
        check_secret(request, self._secret_bytes)

    def _now(self) -> float:
        return self.clock.seconds()

    @staticmethod
    def _body(request: Request) -> bytes:
        content = request.content
        if content is None:
            return b""
        body: bytes = content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise APIError(413, f"body: larger than {MAX_BODY} bytes")
        return body

    @staticmethod
    def _arg(request: Request, name: bytes) -> Optional[str]:
        values = (request.args or {}).get(name)
        if not values:
            return None
        value: bytes = values[0]
        return value.decode("utf-8", "replace")

    def _propose(self, command: Command) -> "Deferred[Applied]":
        # No timer of our own: every `Cluster.propose` fails a proposal it
        # cannot commit in time by itself (the Raft node after
        # PROPOSAL_TIMEOUT), and a second delayed call per write is a
        # measurable share of a leader's CPU.
        return self.cluster.propose(command).addErrback(proposal_failed)

    async def _read_barrier(self, request: Request) -> None:
        await read_barrier(self.cluster, self._arg(request, b"consistent"),
                           self.propose_timeout, cast(IReactorTime, self.clock))  # fmt: skip

    def _instance_json(self, uuid: str, now: Optional[float] = None) -> dict[str, Any]:
        if now is None:
            now = self._now()
        instance = self.cluster.registry.get(uuid, now)
        if instance is None:
            raise APIError(404, f"service {uuid} not found")
        return service_json(instance, now)

    def _check_room(self, service: Service) -> None:
        """409 before proposing when the (Environment, Name) pair is full
        here; the registry checks again, against its own limit, on apply."""
        limit = self.max_instances_per_name
        if self.cluster.registry.count_named(service, service.uuid.lower()) >= limit:
            self._too_many(service, limit)

    @staticmethod
    def _too_many(service: Service, limit: int) -> NoReturn:
        raise APIError(
            409,
            f"Environment {service.environment!r} Name {service.name!r} already has {limit} "
            "instances, the most allowed: unregister some first",
            limit=limit,
        )

    # -- services ------------------------------------------------------------

    # The writes (PUT, PATCH and DELETE of a service: what clients send most)
    # are a check, a proposal and an answer chained as callbacks: a coroutine
    # costs Klein's ensureDeferred and inlineCallbacks machinery on top, a
    # few microseconds per write on a CPU-bound leader.

    @app.route("/skydns/services/<uuid>", methods=["PUT"])
    @guarded
    def add_service(self, request: Request, uuid: str) -> "Deferred[bytes]":
        body = self._body(request)
        try:
            service = parse_service(uuid, body)
        except ValidationError as e:
            raise APIError(400, str(e), field=e.field) from e
        self._check_room(service)
        now = self._now()
        d = self._propose(Register(service, now))
        return d.addCallback(self._registered, request, service, now)

    def _registered(self, applied: Applied, request: Request, service: Service,
                    now: float) -> bytes:  # fmt: skip
        uuid = service.uuid
        if applied.status is Outcome.CONFLICT:
            raise APIError(409, f"service {uuid} already exists")
        if applied.status is Outcome.TOO_MANY:
            self._too_many(service, MAX_INSTANCES_PER_NAME)
        if applied.status is Outcome.NO_LEASE:
            raise APIError(404, f"lease {service.lease} not found: it expired or was "
                           "revoked; grant a new one", field="Lease")  # fmt: skip
        # Shown as of the registration, so TTL is the full lease just granted.
        instance = self.cluster.registry.get(uuid, now) or Instance(service, now + service.ttl)
        return render_json(request, 201, {**service_json(instance, now),
                                          "DNS": dns_names(service, self.domain)})  # fmt: skip

    @app.route("/skydns/services/<uuid>", methods=["GET"])
    @guarded
    async def get_service(self, request: Request, uuid: str) -> bytes:
        await self._read_barrier(request)
        return render_json(request, 200, self._instance_json(uuid))

    @app.route("/skydns/services/<uuid>", methods=["PATCH"])
    @guarded
    def patch_service(self, request: Request, uuid: str) -> "Deferred[bytes]":
        """Renew (``TTL``), drain or undrain (``Drain``); ``TTL`` 0 expires
        the instance now, as SkyDNS 1 did (its callbacks fire)."""
        self._known_length(uuid)
        body = self._body(request)
        try:
            ttl, drain = parse_patch(body)
        except ValidationError as e:
            raise APIError(400, str(e), field=e.field) from e
        now = self._now()
        if ttl == 0:
            d = self._propose(Unregister(uuid, now))
            return d.addCallback(self._removed, request, uuid, now)
        if drain is None:  # a heartbeat: no log entry unless the TTL changes
            return self._leases.heartbeat(request, uuid, cast(int, ttl))
        return defer.ensureDeferred(self._drain(request, uuid, ttl, drain, now))

    async def _drain(self, request: Request, uuid: str, ttl: Optional[int], drain: bool,
                     now: float) -> bytes:  # fmt: skip
        if ttl is not None:
            self._found(await self._propose(Renew(uuid, ttl, now)), uuid)
        self._found(await self._propose(Drain(uuid, drain, now)), uuid)
        return render_json(request, 200, self._instance_json(uuid, now))

    @staticmethod
    def _found(applied: Applied, uuid: str) -> None:
        if applied.status is Outcome.NOT_FOUND:
            raise APIError(404, f"service {uuid} not found")

    @app.route("/skydns/services/<uuid>", methods=["DELETE"])
    @guarded
    def remove_service(self, request: Request, uuid: str) -> "Deferred[bytes]":
        self._known_length(uuid)
        now = self._now()
        d = self._propose(Unregister(uuid, now))
        return d.addCallback(self._removed, request, uuid, now)

    @staticmethod
    def _known_length(uuid: str) -> None:
        """No instance has a UUID this long (a UUID is one DNS label): 404
        without a proposal, which the log would refuse."""
        if len(uuid) > MAX_UUID_KEY:
            raise APIError(404, f"service {uuid[:64]}... not found")

    def _removed(self, applied: Applied, request: Request, uuid: str, now: float) -> bytes:
        if applied.status is Outcome.NOT_FOUND:
            raise APIError(404, f"service {uuid} not found")
        for removal in applied.removals:
            if removal.instance.service.uuid.lower() == uuid.lower():
                return render_json(request, 200, service_json(removal.instance, now))
        return render_json(request, 200, {"UUID": uuid})

    @app.route("/skydns/leases", methods=["POST"])
    @app.route("/skydns/leases/", methods=["POST"], endpoint="grant_lease_slash")
    @guarded
    def grant_lease(self, request: Request) -> "Deferred[bytes]":
        return self._leases.grant(request, self._body(request))

    @app.route("/skydns/leases/<lease_id>", methods=["PUT"])
    @guarded
    def renew_lease(self, request: Request, lease_id: str) -> "Deferred[bytes]":
        return self._leases.renew(request, lease_id)

    @app.route("/skydns/leases/<lease_id>", methods=["DELETE"])
    @guarded
    def revoke_lease(self, request: Request, lease_id: str) -> "Deferred[bytes]":
        return self._leases.revoke(request, lease_id)

    @app.route("/skydns/leases/<lease_id>", methods=["GET"])
    @guarded
    async def show_lease(self, request: Request, lease_id: str) -> bytes:
        await self._read_barrier(request)
        return render_json(request, 200, self._leases.show(lease_id))

    @app.route("/skydns/services", methods=["GET"], endpoint="list_services_bare")
    @app.route("/skydns/services/", methods=["GET"])
    @guarded
    async def list_services(self, request: Request) -> bytes:
        pattern = self._pattern(request)
        limit, after = page_arguments(self._arg(request, b"limit"), self._arg(request, b"after"))
        await self._read_barrier(request)
        index = self._arg(request, b"index")
        hub = cast(WatchHub, self.watches)
        if index is not None:  # a long poll (SPEC section 6)
            await long_poll(hub, pattern, index, self._arg(request, b"wait"),
                            cast(IReactorTime, self.clock))  # fmt: skip
        request.setHeader(b"X-SkyDNS-Index", str(hub.index).encode("ascii"))
        now = self._now()
        instances, following = page(self.cluster.registry.query(pattern, now), limit, after)
        if following is not None:
            request.setHeader(b"X-SkyDNS-Next", following.encode("utf-8"))
        return await render_list(request, instances, now, cast(IReactorTime, self.clock))

    @app.route("/skydns/watch", methods=["GET"])
    @app.route("/skydns/watch/", methods=["GET"], endpoint="watch_slash")
    @guarded
    def watch(self, request: Request) -> "Deferred[bytes]":
        pattern = self._pattern(request)
        counted = self.metrics.watched if self.metrics is not None else None
        d = defer.ensureDeferred(self._read_barrier(request))
        return d.addCallback(lambda _: serve_watch(
            request, cast(WatchHub, self.watches), pattern, cast(IReactorTime, self.clock),
            counted))  # fmt: skip

    def _pattern(self, request: Request) -> Pattern:
        query = self._arg(request, b"query")
        if query is None or not query.strip():
            return Pattern()
        try:
            return parse_query(query, self.domain, self.names)
        except PatternError as e:
            raise APIError(400, f"query: {e}", field="query") from e

    @app.route("/skydns/regions", methods=["GET"], endpoint="regions_bare")
    @app.route("/skydns/regions/", methods=["GET"])
    @guarded
    async def regions(self, request: Request) -> bytes:
        await self._read_barrier(request)
        return render_json(request, 200, self.cluster.registry.regions(self._now()))

    @app.route("/skydns/environments", methods=["GET"], endpoint="environments_bare")
    @app.route("/skydns/environments/", methods=["GET"])
    @guarded
    async def environments(self, request: Request) -> bytes:
        await self._read_barrier(request)
        return render_json(request, 200, self.cluster.registry.environments(self._now()))

    # -- callbacks -----------------------------------------------------------

    @app.route("/skydns/callbacks/<uuid>", methods=["PUT"])
    @guarded
    async def add_callback(self, request: Request, uuid: str) -> bytes:
        body = self._body(request)
        try:
            callback = parse_callback(uuid, body)
        except ValidationError as e:
            raise APIError(400, str(e), field=e.field) from e
        applied = await self._propose(AddCallback(callback, self._now()))
        if applied.status is Outcome.NOT_FOUND:
            raise APIError(404, f"no service matches callback {uuid}")
        return render_json(request, 201, callback_json(callback))

    # -- cluster and operations ----------------------------------------------

    @app.route("/skydns/cluster", methods=["GET"])
    @app.route("/skydns/cluster/", methods=["GET"], endpoint="cluster_status_slash")
    @guarded
    async def cluster_status(self, request: Request) -> bytes:
        status = self.cluster.status()
        if self.dns_address is not None:
            status = {**status, "dns": self.dns_address}
        return render_json(request, 200, status)

    @app.route("/skydns/cluster/members", methods=["POST"])
    @guarded
    async def add_member(self, request: Request) -> bytes:
        member_id, address, voter = parse_add(self._body(request))
        await change_member(self.cluster, self.clock, self.propose_timeout,
                            "add" if voter else "replica", member_id, address)  # fmt: skip
        body = {"id": member_id, "address": address, "role": "learner" if voter else "replica"}
        return render_json(request, 201, body)

    @app.route("/skydns/cluster/members/<member_id>", methods=["DELETE"])
    @guarded
    async def remove_member(self, request: Request, member_id: str) -> bytes:
        await change_member(self.cluster, self.clock, self.propose_timeout, "remove",
                            member_id, None)  # fmt: skip
        return render_json(request, 200, {"id": member_id})

    @app.route("/health", methods=["GET"])
    async def health(self, request: Request) -> bytes:
        return render_json(request, 200, {"status": "ok"})

    @app.route("/ready", methods=["GET"])
    async def ready(self, request: Request) -> bytes:
        if self.cluster.is_ready():
            return render_json(request, 200, {"ready": True})
        request.setHeader(b"Retry-After", RETRY_AFTER)
        reason = not_ready_reason(self.cluster.status())
        return render_json(request, 503, {"ready": False, "reason": reason})

    @app.route("/metrics", methods=["GET"])
    async def metrics_text(self, request: Request) -> bytes:
        if self.metrics is None:
            raise APIError(404, "metrics are not enabled")
        body, content_type = self.metrics.render()
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return body

    # -- errors --------------------------------------------------------------

    @app.handle_errors(Exception)
    def _error(self, request: Any, failure: Failure) -> bytes:
        return render_error(request, failure, self.authorize)


#: Build the HTTP API; serve ``make_api(...).resource()``.  ``names`` is the
#: label order ``?query=`` patterns are read in (`skydns.patterns.ORDERS`).
make_api = API
