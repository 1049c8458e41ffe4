"""`SkyDNSClient`: every route of the SkyDNS HTTP API (SPEC.md §2), over treq.

Each method returns a `Deferred` (awaitable from ``async def`` code) that
fires with a parsed value, or fails with a `SkyDNSError` subclass when the
server answered with an error status, or `ConnectionFailed` when no answer
came (refused, lost, timed out).
"""

from __future__ import annotations

import builtins
import functools
import json
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Coroutine,
    Mapping,
    Optional,
    ParamSpec,
    TypeVar,
    cast,
)
from urllib.parse import quote

from twisted.internet import defer, error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.client import ResponseFailed
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IResponse

from skydns.client.errors import ConnectionFailed, error_for_status
from skydns.client.models import (
    CallbackSpec,
    ClusterStatus,
    LeaseInfo,
    ServiceInfo,
    ServiceSpec,
)

if TYPE_CHECKING:
    from skydns.client.watch import Watch
from skydns.clock import Scheduler as Clock

try:  # Not exported from twisted.web.client in every release.
    from twisted.web._newclient import RequestTransmissionFailed, ResponseNeverReceived
except ImportError:  # pragma: no cover
    RequestTransmissionFailed = ResponseNeverReceived = ResponseFailed  # type: ignore


P = ParamSpec("P")
T = TypeVar("T")

#: Failures that mean "no HTTP answer", as opposed to an error answer.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    error.ConnectError,
    error.DNSLookupError,
    error.ConnectionLost,
    error.ConnectionDone,
    error.TimeoutError,
    defer.TimeoutError,
    ResponseFailed,
    ResponseNeverReceived,
    RequestTransmissionFailed,
    SchemeNotSupported,
)


def _deferred(
    f: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, "Deferred[T]"]:
    """Run a coroutine method as a Deferred, so callers may await it or add callbacks."""

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> "Deferred[T]":
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return wrapper


def _error_message(body: bytes, response: IResponse) -> str:
    """The ``error`` text of a JSON error body, else the body or the reason phrase."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])
    if text:
        return text
    return response.phrase.decode("ascii", "replace") if response.phrase else "error"


class SkyDNSClient:
    """A client for one SkyDNS node.

    ``http`` is treq or anything shaped like it (``treq.testing.StubTreq`` in
    tests); ``clock`` times requests out after ``timeout`` seconds.  The
    ``secret`` goes in the ``Authorization`` header as is, which both SkyDNS
    version 1 servers and this one accept.
    """

    def __init__(
        self,
        base_url: str,
        secret: Optional[str] = None,
        http: Any = None,
        clock: Optional[Clock] = None,
        timeout: Optional[float] = 10.0,
    ) -> None:
        if http is None:
            import treq

            http = treq
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        self.clock: Clock = clock  # type: ignore[assignment]
        self.base_url = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self._http = http

    # -- plumbing ------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, bytes]:
        """Send one request; return (status, body) for 2xx or a status in ``ok``."""
        url = self._url(path)
        headers = {b"Accept": [b"application/json"]}
        if self.secret is not None:
            headers[b"Authorization"] = [self.secret.encode("utf-8")]
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            headers[b"Content-Type"] = [b"application/json"]
            kwargs["data"] = json.dumps(body).encode("utf-8")
        if params:
            kwargs["params"] = dict(params)
        try:
            d = self._http.request(method, url, **kwargs)
            if self.timeout is not None:
                d.addTimeout(self.timeout, cast(IReactorTime, self.clock))
            response: IResponse = await d
            content_d = self._http.content(response)
            if self.timeout is not None:
                content_d.addTimeout(self.timeout, cast(IReactorTime, self.clock))
            content: bytes = await content_d
        except CONNECTION_ERRORS as e:
            raise ConnectionFailed(url, e) from e
        status = response.code
        if 200 <= status < 300 or status in ok:
            return status, content
        raise error_for_status(status, _error_message(content, response))

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        _, content = await self._request(method, path, **kwargs)
        if not content.strip():
            return None
        try:
            return json.loads(content.decode("utf-8"))
        except ValueError as e:
            raise ConnectionFailed(self._url(path), ValueError(f"bad JSON: {e}")) from e

    @staticmethod
    def _maybe_service(data: Any, uuid: str) -> Optional[ServiceInfo]:
        """A service echoed in a write's answer; None when the body carries none."""
        if isinstance(data, dict) and any(str(k).lower() == "name" for k in data):
            return ServiceInfo.from_json(data, uuid=uuid)
        return None

    @staticmethod
    def _service_path(uuid: str) -> str:
        return "/skydns/services/" + quote(uuid, safe="")

    # -- services --------------------------------------------------------------

    @_deferred
    async def register(
        self,
        uuid: str,
        service: "ServiceSpec | Mapping[str, Any] | None" = None,
        **fields: Any,
    ) -> Optional[ServiceInfo]:
        """Register an instance (PUT): a `ServiceSpec`, a raw JSON mapping, or
        the `ServiceSpec` fields as keywords.  `Conflict` if the UUID exists.

        Fires with the registration as the server echoes it, if it does."""
        if service is None:
            service = ServiceSpec(**fields)
        body = service.to_json() if isinstance(service, ServiceSpec) else dict(service)
        return self._maybe_service(await self._json("PUT", self._service_path(uuid), body=body),
                                   uuid)

    add = register

    @_deferred
    async def get(self, uuid: str, consistent: bool = False) -> ServiceInfo:
        """One instance; ``consistent`` asks for a linearizable read through the leader."""
        params = {"consistent": "true"} if consistent else None
        data = await self._json("GET", self._service_path(uuid), params=params)
        return ServiceInfo.from_json(data or {}, uuid=uuid)

    @_deferred
    async def renew(self, uuid: str, ttl: int) -> Optional[ServiceInfo]:
        """Renew the lease for ``ttl`` seconds from now (PATCH).  `NotFound` if gone."""
        data = await self._json("PATCH", self._service_path(uuid), body={"TTL": ttl})
        return self._maybe_service(data, uuid)

    @_deferred
    async def drain(self, uuid: str, drain: bool = True) -> Optional[ServiceInfo]:
        """Leave the instance out of every DNS answer (``drain=False``: put
        it back); it stays registered and its lease runs on.  `NotFound` if gone."""
        data = await self._json("PATCH", self._service_path(uuid), body={"Drain": drain})
        return self._maybe_service(data, uuid)

    def undrain(self, uuid: str) -> "Deferred[Optional[ServiceInfo]]":
        """Put a drained instance back into DNS answers."""
        return self.drain(uuid, False)

    def watch(self, pattern: Optional[str] = None, consistent: bool = False) -> "Watch":
        """The changes of ``pattern``'s answer set, as they happen: an async
        iterator of `WatchEvent` (a ``reset`` with the whole set first), that
        reconnects and resumes by itself until ``close()``."""
        from skydns.client.watch import Watch

        return Watch(self, pattern, consistent)

    # -- leases (SPEC.md §7) ----------------------------------------------------

    @_deferred
    async def grant_lease(self, ttl: int) -> LeaseInfo:
        """A new lease of ``ttl`` seconds; register instances with
        ``ServiceSpec(lease=...)`` and keep them all with `renew_lease`."""
        return LeaseInfo.from_json(await self._json("POST", "/skydns/leases", body={"TTL": ttl}))

    @_deferred
    async def renew_lease(self, lease_id: str) -> int:
        """Renew a lease for its TTL (no log entry on the server); the TTL.
        `NotFound` when it is gone: grant a new one and register again."""
        data = await self._json("PUT", self._lease_path(lease_id))
        return LeaseInfo.from_json(data or {}).ttl

    @_deferred
    async def revoke_lease(self, lease_id: str) -> list[str]:
        """End a lease now, removing its instances; their UUIDs."""
        data = await self._json("DELETE", self._lease_path(lease_id))
        return [str(u) for u in (data or {}).get("Removed", [])]

    @_deferred
    async def lease(self, lease_id: str, consistent: bool = False) -> LeaseInfo:
        """A lease: its TTL, the seconds recorded left, and its instances."""
        params = {"consistent": "true"} if consistent else None
        data = await self._json("GET", self._lease_path(lease_id), params=params)
        return LeaseInfo.from_json(data or {})

    @staticmethod
    def _lease_path(lease_id: str) -> str:
        return "/skydns/leases/" + quote(lease_id, safe="")

    @_deferred
    async def unregister(self, uuid: str) -> Optional[ServiceInfo]:
        """Remove an instance (DELETE).  `NotFound` if absent."""
        return self._maybe_service(await self._json("DELETE", self._service_path(uuid)), uuid)

    @_deferred
    async def list(
        self, pattern: Optional[str] = None, consistent: bool = False
    ) -> "builtins.list[ServiceInfo]":
        """Instances matching a DNS-style pattern (``rails.production``), or all."""
        params = {"query": pattern} if pattern else {}
        if consistent:
            params["consistent"] = "true"
        data = await self._json("GET", "/skydns/services/", params=params)
        if isinstance(data, dict):  # tolerate a {uuid: service} map
            return [ServiceInfo.from_json(v, uuid=k) for k, v in data.items()]
        return [ServiceInfo.from_json(item) for item in data or []]

    @_deferred
    async def regions(self, consistent: bool = False) -> dict[str, int]:
        """Instance counts by region."""
        return await self._counts("/skydns/regions/", consistent)

    @_deferred
    async def environments(self, consistent: bool = False) -> dict[str, int]:
        """Instance counts by environment."""
        return await self._counts("/skydns/environments/", consistent)

    async def _counts(self, path: str, consistent: bool) -> dict[str, int]:
        params = {"consistent": "true"} if consistent else None
        data = await self._json("GET", path, params=params)
        return {str(k): int(v) for k, v in (data or {}).items()}

    @_deferred
    async def add_callback(
        self,
        uuid: str,
        callback: "CallbackSpec | Mapping[str, Any] | None" = None,
        **fields: Any,
    ) -> None:
        """Ask to be called back when matching instances go (PUT /skydns/callbacks/{uuid})."""
        if callback is None:
            callback = CallbackSpec(**fields)
        body = callback.to_json() if isinstance(callback, CallbackSpec) else dict(callback)
        await self._request("PUT", "/skydns/callbacks/" + quote(uuid, safe=""), body=body)

    # -- cluster and operations -------------------------------------------------

    @_deferred
    async def cluster_status(self) -> ClusterStatus:
        """The answering node's view of the cluster."""
        return ClusterStatus.from_json(await self._json("GET", "/skydns/cluster") or {})

    @_deferred
    async def join(self, member_id: str, address: str, voter: bool = True) -> Any:
        """Add a member (``address`` is its Raft HOST:PORT; ``voter`` False for
        a read replica); the server's JSON answer."""
        body: dict[str, Any] = {"id": member_id, "address": address}
        if not voter:
            body["voter"] = False
        return await self._json("POST", "/skydns/cluster/members", body=body)

    @_deferred
    async def remove(self, member_id: str) -> Any:
        """Remove a member from the cluster; the server's JSON answer, if any."""
        path = "/skydns/cluster/members/" + quote(member_id, safe="")
        return await self._json("DELETE", path)

    @_deferred
    async def health(self) -> bool:
        """True when the process answers ``GET /health``; fails otherwise."""
        await self._request("GET", "/health")
        return True

    @_deferred
    async def ready(self) -> bool:
        """Whether the node can serve (``GET /ready``: 200 yes, 503 no)."""
        status, _ = await self._request("GET", "/ready", ok=(503,))
        return status < 300

    @_deferred
    async def metrics(self) -> str:
        """The Prometheus text exposition of ``GET /metrics``."""
        _, content = await self._request("GET", "/metrics")
        return content.decode("utf-8", "replace")
