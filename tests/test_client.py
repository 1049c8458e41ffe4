"""`skydns.client` against an in-memory SkyDNS (a tiny Klein app behind StubTreq).

The fake speaks SPEC.md §2 only as far as the client needs: it checks that the
client sends the right method, path, headers and body, and answers with the
right statuses and JSON shapes.
"""

from __future__ import annotations

import json
from typing import Any, Optional, cast

from klein import Klein
from treq.testing import StubTreq
from twisted.application.service import IService
from twisted.internet import defer, error, task
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from zope.interface.verify import verifyObject

from skydns.client import (
    BadRequest,
    CallbackSpec,
    ClusterStatus,
    Conflict,
    ConnectionFailed,
    LeaseKeeper,
    Member,
    NotFound,
    ServiceInfo,
    ServiceSpec,
    SkyDNSClient,
    SkyDNSError,
    Unauthorized,
    Unavailable,
)

BASE = "http://skydns.test:8080"
WEB = ServiceSpec("web", "production", "east", "1.0.1", "10.0.0.5", 8000, ttl=30)


def _error(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"error": message}).encode()


def _json(request: Request, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


class FakeSkyDNS:
    """An in-memory SkyDNS HTTP API with a scriptable failure queue."""

    app = Klein()

    def __init__(self, secret: Optional[str] = None) -> None:
        self.secret = secret
        self.services: dict[str, dict[str, Any]] = {}
        self.callbacks: dict[str, dict[str, Any]] = {}
        self.members = {"n1": "127.0.0.1:7070"}
        #: The "voter" of each member added (True when left out).
        self.voters: dict[str, bool] = {}
        #: The DNS address the status reports (None: the field is absent).
        self.dns: Optional[str] = None
        self.is_ready = True
        #: (method, path, query args, Authorization header, JSON body) per request.
        self.requests: list[tuple[str, str, dict[bytes, list[bytes]], Optional[bytes], Any]] = []
        #: Statuses to answer the next requests with, before looking at them.
        self.fail_next: list[int] = []

    def stub(self) -> StubTreq:
        return StubTreq(self.app.resource())

    def _check(self, request: Request) -> Optional[bytes]:
        assert request.content is not None
        body = request.content.read()
        parsed = json.loads(body) if body else None
        auth = request.getHeader(b"authorization")
        self.requests.append(
            (request.method.decode(), request.path.decode(), dict(request.args), auth, parsed)
        )
        if self.fail_next:
            return _error(request, self.fail_next.pop(0), "scripted failure")
        if self.secret is not None and request.path.startswith(b"/skydns/"):
            if auth not in (self.secret.encode(), b"Bearer " + self.secret.encode()):
                return _error(request, 401, "unauthorized")
        request.content.seek(0)
        return None

    def _body(self, request: Request) -> dict[str, Any]:
        assert request.content is not None
        return {k.lower(): v for k, v in json.loads(request.content.read()).items()}

    @app.route("/skydns/services/<uuid>", methods=["PUT"])
    def put(self, request: Request, uuid: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        body = self._body(request)
        if not body.get("host"):
            return _error(request, 400, "Host: required")
        if uuid in self.services:
            return _error(request, 409, f"service {uuid} exists")
        self.services[uuid] = {
            "UUID": uuid,
            "Name": body["name"],
            "Version": body["version"],
            "Environment": body["environment"],
            "Region": body["region"],
            "Host": body["host"],
            "Port": body["port"],
            "TTL": body["ttl"],
            "Priority": body.get("priority"),
            "Weight": body.get("weight"),
            "NoExpire": body.get("noexpire", False),
            "Expires": "2026-11-25T06:00:00Z",
        }
        request.setResponseCode(201)
        return b""

    @app.route("/skydns/services/<uuid>", methods=["GET"])
    def get(self, request: Request, uuid: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        if uuid not in self.services:
            return _error(request, 404, f"service {uuid} not found")
        return _json(request, self.services[uuid])

    @app.route("/skydns/services/<uuid>", methods=["PATCH"])
    def patch(self, request: Request, uuid: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        if uuid not in self.services:
            return _error(request, 404, f"service {uuid} not found")
        self.services[uuid]["TTL"] = self._body(request)["ttl"]
        return b""

    @app.route("/skydns/services/<uuid>", methods=["DELETE"])
    def delete(self, request: Request, uuid: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        if self.services.pop(uuid, None) is None:
            return _error(request, 404, f"service {uuid} not found")
        return b""

    @app.route("/skydns/services/", methods=["GET"])
    def query(self, request: Request) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        pattern = request.args.get(b"query", [b""])[0].decode()
        if pattern.count(".") > 6:
            return _error(request, 400, "query: too many labels")
        first = pattern.split(".")[0]
        found = [s for s in self.services.values() if first in ("", "*", s["Name"])]
        return _json(request, found)

    def _counts(self, request: Request, key: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        counts: dict[str, int] = {}
        for s in self.services.values():
            counts[s[key]] = counts.get(s[key], 0) + 1
        return _json(request, counts)

    @app.route("/skydns/regions/", methods=["GET"])
    def regions(self, request: Request) -> bytes:
        return self._counts(request, "Region")

    @app.route("/skydns/environments/", methods=["GET"])
    def environments(self, request: Request) -> bytes:
        return self._counts(request, "Environment")

    @app.route("/skydns/callbacks/<uuid>", methods=["PUT"])
    def callback(self, request: Request, uuid: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        body = self._body(request)
        if not any(s["Name"] == body["name"] for s in self.services.values()):
            return _error(request, 404, "no matching service")
        self.callbacks[uuid] = body
        request.setResponseCode(201)
        return b""

    @app.route("/skydns/cluster", methods=["GET"])
    def cluster(self, request: Request) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        members = [
            {"id": k, "address": v, "role": "leader" if k == "n1" else "follower"}
            for k, v in sorted(self.members.items())
        ]
        status = {"id": "n1", "leader": "n1", "term": 3, "commit_index": 7,
                  "applied_index": 6, "members": members}  # fmt: skip
        if self.dns is not None:
            status["dns"] = self.dns
        return _json(request, status)

    @app.route("/skydns/cluster/members", methods=["POST"])
    def join(self, request: Request) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        body = self._body(request)
        self.members[body["id"]] = body["address"]
        self.voters[body["id"]] = body.get("voter", True)
        return _json(request, {"id": body["id"], "address": body["address"]})

    @app.route("/skydns/cluster/members/<member>", methods=["DELETE"])
    def remove(self, request: Request, member: str) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        if self.members.pop(member, None) is None:
            return _error(request, 404, f"no member {member}")
        return b""

    @app.route("/health", methods=["GET"])
    def health(self, request: Request) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        return b"ok"

    @app.route("/ready", methods=["GET"])
    def ready(self, request: Request) -> bytes:
        if (refused := self._check(request)) is not None:
            return refused
        if not self.is_ready:
            return _error(request, 503, "no leader")
        return b"ready"


class RefusingHTTP:
    """A treq stand-in whose every request fails to connect."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> "Deferred[Any]":
        self.calls += 1
        return defer.fail(error.ConnectionRefusedError("refused"))


class HangingHTTP:
    """A treq stand-in whose requests never answer (until cancelled)."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> "Deferred[Any]":
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d


class GatedHTTP:
    """Passes requests to ``inner`` except those whose method is held."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.held: set[str] = set()
        self.waiting: list[Deferred[Any]] = []
        self.cancelled: list[Deferred[Any]] = []
        self.urls: list[str] = []
        self.methods: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> "Deferred[Any]":
        self.urls.append(url)
        self.methods.append(method)
        if method in self.held:
            d: Deferred[Any] = Deferred(self.cancelled.append)
            self.waiting.append(d)
            return d
        return self.inner.request(method, url, **kwargs)

    def content(self, response: Any) -> "Deferred[bytes]":
        return self.inner.content(response)


class ClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeSkyDNS()
        self.clock = task.Clock()
        self.client = SkyDNSClient(BASE, http=self.server.stub(), clock=self.clock)

    def register_web(self, uuid: str = "web-1", spec: ServiceSpec = WEB) -> None:
        self.successResultOf(self.client.register(uuid, spec))

    def test_register_sends_v1_body(self) -> None:
        """register PUTs the service with SkyDNS v1 field names; optional fields when set."""
        spec = ServiceSpec("web", "production", "east", "1.0.1", "10.0.0.5", 8000, ttl=30,
                           priority=5, weight=7, no_expire=True)
        self.assertIsNone(self.successResultOf(self.client.register("web-1", spec)))
        method, path, _, auth, body = self.server.requests[-1]
        self.assertEqual((method, path, auth), ("PUT", "/skydns/services/web-1", None))
        self.assertEqual(body, {"Name": "web", "Environment": "production", "Region": "east",
                                "Version": "1.0.1", "Host": "10.0.0.5", "Port": 8000,
                                "TTL": 30, "Priority": 5, "Weight": 7, "NoExpire": True})
        self.successResultOf(self.client.register("web-2", WEB))
        self.assertNotIn("Priority", self.server.requests[-1][4])

    def test_register_keywords_and_raw_mapping(self) -> None:
        """register takes the spec's fields as keywords, or a raw JSON mapping as is."""
        self.successResultOf(self.client.add("k", name="a", environment="e", region="r",
                                             version="1", host="h", port=1, ttl=5))
        self.assertEqual(self.server.services["k"]["Name"], "a")
        self.successResultOf(self.client.register("m", {"name": "b", "environment": "e",
                                                        "region": "r", "version": "1",
                                                        "host": "h", "port": 2, "ttl": 5}))
        self.assertEqual(self.server.requests[-1][4]["name"], "b")

    def test_register_conflict(self) -> None:
        """A second register of the same UUID fails with Conflict carrying the error text."""
        self.register_web()
        failure = self.failureResultOf(self.client.register("web-1", WEB), Conflict)
        self.assertEqual(failure.value.status, 409)
        self.assertEqual(failure.value.message, "service web-1 exists")

    def test_register_with_keywords_needs_only_host_and_port(self) -> None:
        """register(uuid, name=..., host=..., port=...) works without
        environment, region or version, as the server and CLI allow."""
        self.successResultOf(self.client.register("web-9", name="web", host="10.0.0.9",
                                                  port=80))  # fmt: skip
        body = self.server.requests[-1][4]
        self.assertEqual((body["Name"], body["Host"], body["Port"], body["Environment"]),
                         ("web", "10.0.0.9", 80, ""))  # fmt: skip

    def test_register_bad_request(self) -> None:
        """A 400 becomes BadRequest naming the field."""
        bad = ServiceSpec("web", "production", "east", "1", "", 8000, ttl=30)
        failure = self.failureResultOf(self.client.register("web-1", bad), BadRequest)
        self.assertEqual(failure.value.message, "Host: required")

    def test_get(self) -> None:
        """get parses the service JSON into a ServiceInfo, keeping the raw object."""
        self.register_web()
        info = self.successResultOf(self.client.get("web-1"))
        self.assertEqual(info, ServiceInfo("web-1", "web", "production", "east", "1.0.1",
                                           "10.0.0.5", 8000, 30, expires="2026-11-25T06:00:00Z"))
        self.assertEqual(info.raw["Name"], "web")
        self.assertEqual(self.server.requests[-1][2], {})

    def test_get_consistent(self) -> None:
        """get(consistent=True) asks for ?consistent=true."""
        self.register_web()
        self.successResultOf(self.client.get("web-1", consistent=True))
        self.assertEqual(self.server.requests[-1][2], {b"consistent": [b"true"]})

    def test_get_missing(self) -> None:
        """get of an unknown UUID fails with NotFound."""
        failure = self.failureResultOf(self.client.get("nope"), NotFound)
        self.assertEqual(failure.value.status, 404)

    def test_uuid_is_quoted(self) -> None:
        """A UUID is one path segment, whatever characters it holds."""
        http = GatedHTTP(self.server.stub())
        client = SkyDNSClient(BASE, http=http, clock=self.clock)
        self.failureResultOf(client.get("a/b c"), NotFound)
        self.assertEqual(http.urls, [BASE + "/skydns/services/a%2Fb%20c"])

    def test_renew(self) -> None:
        """renew PATCHes {"TTL": n}; NotFound when the instance is gone."""
        self.register_web()
        self.successResultOf(self.client.renew("web-1", 90))
        self.assertEqual(self.server.requests[-1][:2], ("PATCH", "/skydns/services/web-1"))
        self.assertEqual(self.server.requests[-1][4], {"TTL": 90})
        self.failureResultOf(self.client.renew("gone", 90), NotFound)

    def test_unregister(self) -> None:
        """unregister DELETEs the instance; a second time is NotFound."""
        self.register_web()
        self.successResultOf(self.client.unregister("web-1"))
        self.assertEqual(self.server.services, {})
        self.failureResultOf(self.client.unregister("web-1"), NotFound)

    def test_list(self) -> None:
        """list sends the pattern as ?query= and parses each service; no pattern, no query."""
        self.register_web("web-1")
        self.register_web("db-1", ServiceSpec("db", "production", "west", "9", "h", 5432, 30))
        found = self.successResultOf(self.client.list("web.production"))
        self.assertEqual([s.uuid for s in found], ["web-1"])
        self.assertEqual(self.server.requests[-1][2], {b"query": [b"web.production"]})
        everything = self.successResultOf(self.client.list())
        self.assertEqual(sorted(s.uuid for s in everything), ["db-1", "web-1"])
        self.assertEqual(self.server.requests[-1][2], {})

    def test_consistent_reads(self) -> None:
        """list, regions and environments pass consistent=True as ?consistent=true."""
        self.successResultOf(self.client.list("web", consistent=True))
        self.assertEqual(self.server.requests[-1][2],
                         {b"query": [b"web"], b"consistent": [b"true"]})
        self.successResultOf(self.client.regions(consistent=True))
        self.assertEqual(self.server.requests[-1][2], {b"consistent": [b"true"]})
        self.successResultOf(self.client.environments(consistent=True))
        self.assertEqual(self.server.requests[-1][2], {b"consistent": [b"true"]})

    def test_list_bad_pattern(self) -> None:
        """A refused pattern fails with BadRequest."""
        self.failureResultOf(self.client.list("a.b.c.d.e.f.g.h"), BadRequest)

    def test_regions_and_environments(self) -> None:
        """regions and environments return counts by value."""
        self.register_web("web-1")
        self.register_web("web-2")
        self.register_web("db-1", ServiceSpec("db", "staging", "west", "9", "h", 5432, 30))
        self.assertEqual(self.successResultOf(self.client.regions()), {"east": 2, "west": 1})
        self.assertEqual(self.successResultOf(self.client.environments()),
                         {"production": 2, "staging": 1})

    def test_add_callback(self) -> None:
        """add_callback PUTs Reply/Port and the match fields; 404 when nothing matches."""
        self.register_web()
        spec = CallbackSpec(reply="10.1.1.1", port=9000, name="web")
        self.successResultOf(self.client.add_callback("cb-1", spec))
        self.assertEqual(self.server.requests[-1][:2], ("PUT", "/skydns/callbacks/cb-1"))
        self.assertEqual(self.server.requests[-1][4]["Reply"], "10.1.1.1")
        self.failureResultOf(self.client.add_callback("cb-2", reply="r", port=1, name="x"),
                             NotFound)

    def test_cluster_status(self) -> None:
        """cluster_status parses the /skydns/cluster object."""
        status = self.successResultOf(self.client.cluster_status())
        self.assertEqual(status, ClusterStatus("n1", "n1", 3, 7, 6,
                                               (Member("n1", "127.0.0.1:7070", "leader"),)))

    def test_join_and_remove(self) -> None:
        """join POSTs {id, address} to the members; remove DELETEs the member."""
        self.successResultOf(self.client.join("n2", "10.0.0.2:7070"))
        self.assertEqual(self.server.requests[-1][:2], ("POST", "/skydns/cluster/members"))
        self.assertEqual(self.server.requests[-1][4], {"id": "n2", "address": "10.0.0.2:7070"})
        self.assertEqual(self.server.members["n2"], "10.0.0.2:7070")
        self.successResultOf(self.client.remove("n2"))
        self.assertEqual(self.server.requests[-1][:2],
                         ("DELETE", "/skydns/cluster/members/n2"))
        self.assertNotIn("n2", self.server.members)
        self.failureResultOf(self.client.remove("n2"), NotFound)

    def test_health_and_ready(self) -> None:
        """health is True; ready is True on 200, False on 503."""
        self.assertTrue(self.successResultOf(self.client.health()))
        self.assertTrue(self.successResultOf(self.client.ready()))
        self.server.is_ready = False
        self.assertFalse(self.successResultOf(self.client.ready()))

    def test_secret(self) -> None:
        """The secret goes raw in the Authorization header; without it, Unauthorized."""
        self.server.secret = "s3cret"
        self.failureResultOf(self.client.regions(), Unauthorized)
        client = SkyDNSClient(BASE, secret="s3cret", http=self.server.stub(), clock=self.clock)
        self.successResultOf(client.regions())
        self.assertEqual(self.server.requests[-1][3], b"s3cret")

    def test_error_statuses(self) -> None:
        """503 is Unavailable; other statuses are plain SkyDNSError with the status."""
        self.server.fail_next = [503, 500]
        self.failureResultOf(self.client.regions(), Unavailable)
        failure = self.failureResultOf(self.client.regions(), SkyDNSError)
        self.assertIs(type(failure.value), SkyDNSError)
        self.assertEqual((failure.value.status, failure.value.message), (500, "scripted failure"))

    def test_connection_refused(self) -> None:
        """No connection is ConnectionFailed, not a SkyDNSError."""
        client = SkyDNSClient(BASE, http=RefusingHTTP(), clock=self.clock)
        failure = self.failureResultOf(client.health(), ConnectionFailed)
        self.assertIn(BASE, str(failure.value))

    def test_timeout(self) -> None:
        """A request with no answer within ``timeout`` fails with ConnectionFailed."""
        client = SkyDNSClient(BASE, http=HangingHTTP(), clock=self.clock, timeout=5)
        d = client.get("web-1")
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, ConnectionFailed)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LeaseKeeperTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = FakeSkyDNS()
        self.clock = task.Clock()
        self.http = GatedHTTP(self.server.stub())
        self.client = SkyDNSClient(BASE, http=self.http, clock=self.clock, timeout=None)

    def keeper(self, **kwargs: Any) -> LeaseKeeper:
        kwargs.setdefault("interval", 10)
        return LeaseKeeper(self.client, "web-1", WEB, clock=self.clock, **kwargs)

    def methods(self) -> list[str]:
        return [r[0] for r in self.server.requests]

    def test_is_a_service(self) -> None:
        """LeaseKeeper provides IService."""
        verifyObject(IService, self.keeper())

    def test_registers_then_renews_on_schedule(self) -> None:
        """Start registers at once; a renewal (PATCH TTL) follows every interval."""
        keeper = self.keeper()
        keeper.startService()
        self.assertEqual(self.methods(), ["PUT"])
        self.assertTrue(keeper.registered)
        self.clock.advance(9.9)
        self.assertEqual(self.methods(), ["PUT"])
        self.clock.advance(0.1)
        self.clock.advance(10)
        self.assertEqual(self.methods(), ["PUT", "PATCH", "PATCH"])
        self.assertEqual(self.server.requests[-1][4], {"TTL": 30})

    def test_default_interval_is_a_third_of_ttl(self) -> None:
        """Without an interval, renewals come every TTL / 3 seconds."""
        keeper = LeaseKeeper(self.client, "web-1", WEB, clock=self.clock)
        self.assertEqual(keeper.interval, 10)

    def test_reregisters_after_404(self) -> None:
        """A renewal that finds the instance gone registers it again at once."""
        keeper = self.keeper()
        keeper.startService()
        del self.server.services["web-1"]
        self.clock.advance(10)
        self.assertEqual(self.methods(), ["PUT", "PATCH", "PUT"])
        self.assertIn("web-1", self.server.services)
        self.assertTrue(keeper.registered)
        self.clock.advance(10)
        self.assertEqual(self.methods()[-1], "PATCH")

    def test_conflict_takes_over_lease(self) -> None:
        """If the UUID is already registered, the keeper renews it instead."""
        self.successResultOf(self.client.register("web-1", WEB))
        keeper = self.keeper()
        keeper.startService()
        self.assertEqual(self.methods(), ["PUT", "PUT", "PATCH"])
        self.assertTrue(keeper.registered)

    def test_backoff_on_unavailable(self) -> None:
        """503s are retried after 1, 2, 4 s; a success resets the schedule."""
        self.server.fail_next = [503, 503, 503]
        keeper = self.keeper()
        keeper.startService()
        self.assertFalse(keeper.registered)
        for delay, count in [(1, 2), (2, 3), (4, 4)]:
            self.clock.advance(delay - 0.01)
            self.assertEqual(len(self.methods()), count - 1)
            self.clock.advance(0.01)
            self.assertEqual(len(self.methods()), count)
        self.assertTrue(keeper.registered)
        self.assertEqual(keeper.failures, 0)
        self.clock.advance(10)
        self.assertEqual(self.methods()[-1], "PATCH")

    def test_backoff_on_connection_errors_is_capped(self) -> None:
        """Connection failures back off exponentially up to backoff_max."""
        http = RefusingHTTP()
        client = SkyDNSClient(BASE, http=http, clock=self.clock)
        keeper = LeaseKeeper(client, "web-1", WEB, interval=10, clock=self.clock,
                             backoff_max=5)
        keeper.startService()
        delays = []
        for _ in range(5):
            (call,) = self.clock.getDelayedCalls()
            delays.append(cast(Any, call).getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [1, 2, 4, 5, 5])
        self.assertEqual(http.calls, 6)

    def test_renew_failure_retries_renew(self) -> None:
        """A renewal that fails transiently is retried as a renewal, not a register."""
        keeper = self.keeper()
        keeper.startService()
        self.server.fail_next = [503]
        self.clock.advance(10)
        self.clock.advance(1)
        self.assertEqual(self.methods(), ["PUT", "PATCH", "PATCH"])
        self.assertTrue(keeper.registered)

    def test_stop_unregisters_and_cancels_timers(self) -> None:
        """stopService unregisters the instance and leaves no timers behind."""
        keeper = self.keeper()
        keeper.startService()
        d = keeper.stopService()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.methods(), ["PUT", "DELETE"])
        self.assertEqual(self.server.services, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(keeper.registered)

    def test_stop_without_unregister(self) -> None:
        """With unregister_on_stop=False, stopping leaves the registration alone."""
        keeper = self.keeper(unregister_on_stop=False)
        keeper.startService()
        self.successResultOf(keeper.stopService())
        self.assertIn("web-1", self.server.services)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_during_request(self) -> None:
        """Stopping with a request in flight cancels it, unregisters, schedules nothing."""
        self.http.held.add("PATCH")
        keeper = self.keeper()
        keeper.startService()
        self.clock.advance(10)
        (pending,) = self.http.waiting
        self.successResultOf(keeper.stopService())
        self.assertEqual(self.http.cancelled, [pending])
        self.assertEqual(self.methods(), ["PUT", "DELETE"])
        self.assertEqual(self.server.services, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_when_unregister_fails(self) -> None:
        """A failed unregister is logged, not raised: shutdown goes on."""
        keeper = self.keeper()
        keeper.startService()
        self.server.fail_next = [503]
        self.successResultOf(keeper.stopService())
        self.assertEqual(self.methods(), ["PUT", "DELETE"])

    def test_contradictory_server_backs_off(self) -> None:
        """409 on register then 404 on renew, repeatedly, ends in backoff, not a loop."""
        self.server.fail_next = [409, 404, 409] * 10
        keeper = self.keeper()
        keeper.startService()
        self.assertEqual(self.methods(), ["PUT", "PATCH", "PUT"])
        self.assertEqual(keeper.failures, 1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.successResultOf(keeper.stopService())


class RealAPITests(SynchronousTestCase):
    """The client against the real `skydns.api` over a `LocalCluster`."""

    def setUp(self) -> None:
        from skydns.http.api import make_api
        from skydns.registry import Registry
        from skydns.testing import LocalCluster

        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        cluster = LocalCluster(Registry(), "n1", clock=self.clock)
        self.api = make_api(cluster, self.clock, "skydns.local",
                            secret="s3cret")
        self.stub = StubTreq(self.api.resource())
        self.client = SkyDNSClient(BASE, secret="s3cret", http=self.stub, clock=self.clock)

    def result(self, d: "Deferred[Any]") -> Any:
        self.stub.flush()
        return self.successResultOf(d)

    def failure(self, d: "Deferred[Any]", *types: type[BaseException]) -> Any:
        self.stub.flush()
        return self.failureResultOf(d, *types)

    def test_lifecycle(self) -> None:
        """register, get, list, regions, renew and unregister round-trip through the API."""
        echoed = self.result(self.client.register("web-1", WEB))
        self.assertEqual(echoed.name, "web")
        info = self.result(self.client.get("web-1"))
        self.assertEqual((info.uuid, info.host, info.port, info.ttl),
                         ("web-1", "10.0.0.5", 8000, 30))
        self.clock.advance(10)
        self.assertEqual(self.result(self.client.get("web-1", consistent=True)).ttl, 20)
        self.assertEqual([s.uuid for s in self.result(self.client.list("web.production"))],
                         ["web-1"])
        self.assertEqual(self.result(self.client.list("nothing.production")), [])
        self.assertEqual(self.result(self.client.regions()), {"east": 1})
        self.assertEqual(self.result(self.client.environments()), {"production": 1})
        self.assertEqual(self.result(self.client.renew("web-1", 90)).ttl, 90)
        self.result(self.client.unregister("web-1"))
        self.failure(self.client.get("web-1"), NotFound)

    def test_drain_and_protocol(self) -> None:
        """drain/undrain PATCH {"Drain": b} and come back with the instance
        as it now is; Protocol and Drain round-trip through register."""
        spec = ServiceSpec(name="dns", environment="production", region="", version="",
                           host="10.0.0.9", port=53, ttl=30, protocol="udp", drain=True)
        echoed = self.result(self.client.register("dns-1", spec))
        self.assertEqual((echoed.protocol, echoed.drain), ("udp", True))
        self.assertFalse(self.result(self.client.undrain("dns-1")).drain)
        self.assertTrue(self.result(self.client.drain("dns-1")).drain)
        self.assertTrue(self.result(self.client.get("dns-1")).drain)
        self.failure(self.client.drain("nope"), NotFound)

    def test_errors(self) -> None:
        """The API's statuses map to the typed errors, with the server's message."""
        self.result(self.client.register("web-1", WEB))
        self.failure(self.client.register("web-1", WEB), Conflict)
        bad = self.failure(self.client.register("x", {"Host": "h"}), BadRequest)
        self.assertIn("Port", bad.value.message)
        self.failure(self.client.renew("nope", 5), NotFound)
        self.failure(self.client.list("a.b.c.d.e.f.g"), BadRequest)
        anonymous = SkyDNSClient(BASE, http=self.stub, clock=self.clock)
        self.failure(anonymous.regions(), Unauthorized)

    def test_bearer_secret(self) -> None:
        """A "Bearer <secret>" secret is accepted as well as the raw one."""
        client = SkyDNSClient(BASE, secret="Bearer s3cret", http=self.stub, clock=self.clock)
        self.assertEqual(self.result(client.regions()), {})

    def test_cluster_health_ready(self) -> None:
        """cluster_status, health and ready read the operational endpoints."""
        status = self.result(self.client.cluster_status())
        self.assertEqual((status.id, status.leader), ("n1", "n1"))
        self.assertEqual([m.role for m in status.members], ["leader"])
        self.assertTrue(self.result(self.client.health()))
        self.assertTrue(self.result(self.client.ready()))

    def test_lease_keeper_survives_expiry(self) -> None:
        """A lease that ran out (renewals too late) is registered again by the keeper."""
        http = GatedHTTP(self.stub)
        client = SkyDNSClient(BASE, secret="s3cret", http=http, clock=self.clock)
        keeper = LeaseKeeper(client, "web-1", WEB, interval=40, clock=self.clock)
        keeper.startService()
        self.stub.flush()
        self.assertTrue(keeper.registered)
        self.clock.advance(40)
        self.stub.flush()
        self.assertEqual(http.methods, ["PUT", "PATCH", "PUT"])
        self.assertEqual(self.result(self.client.get("web-1")).ttl, 30)
        self.successResultOf(keeper.stopService())
        self.failure(self.client.get("web-1"), NotFound)
