"""The HTTP API (SPEC.md §2) through StubTreq, over a LocalCluster and a real
Registry, with the clock injected."""

from __future__ import annotations

import json
from typing import Any, Optional

from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import NotLeader
from skydns.commands import AddCallback, Command, Drain, Register, Renew, Unregister
from skydns.http.api import make_api
from skydns.http.limits import MAX_BODY
from skydns.leases.renewal import Renewal
from skydns.patterns import Pattern
from skydns.raft.node.options import NodeOptions
from skydns.registry import Applied, Registry
from skydns.testing import LocalCluster
from tests.raftnodes import Cluster as RaftCluster

BASE = "http://127.0.0.1:8080"
START = 1_700_000_000.0

RAILS = {
    "Name": "rails",
    "Version": "1.0.1",
    "Environment": "production",
    "Region": "east",
    "Host": "web1.example.com",
    "Port": 9000,
    "TTL": 10,
}


def service(**changes: Any) -> dict[str, Any]:
    body = dict(RAILS)
    body.update(changes)
    return body


class Response:
    """What a test looks at: code, headers and the decoded JSON body."""

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.raw = body

    def header(self, name: str) -> Optional[str]:
        values = self.headers.getRawHeaders(name)
        return str(values[0]) if values else None

    def json(self) -> Any:
        return json.loads(self.raw)


class ControlledCluster(LocalCluster):
    """A LocalCluster whose proposals and barriers a test can intercept."""

    def __init__(self, registry: Registry, clock: Optional[Clock] = None) -> None:
        super().__init__(registry, clock=clock, record_renewals=False)
        self.proposed: list[Command] = []
        self.propose_result: Optional[Deferred[Applied]] = None
        self.propose_error: Optional[Exception] = None
        self.barrier: Optional[Deferred[None]] = None
        self.barriers = 0
        self.ready = True

    def propose(self, command: Command) -> Deferred[Applied]:
        self.proposed.append(command)
        if self.propose_error is not None:
            return fail(self.propose_error)
        if self.propose_result is not None:
            return self.propose_result
        return super().propose(command)

    def renew(self, renewal: Renewal) -> Deferred[Optional[int]]:
        """Renewals fail as proposals do (a cluster that takes no write
        takes no heartbeat either)."""
        if self.propose_error is not None:
            return fail(self.propose_error)
        if self.propose_result is not None:
            return self.propose_result  # type: ignore[return-value]
        return super().renew(renewal)

    def read_barrier(self) -> Deferred[None]:
        self.barriers += 1
        if self.barrier is not None:
            return self.barrier
        return super().read_barrier()

    def is_ready(self) -> bool:
        return self.ready


class FakeMetrics:
    def __init__(self) -> None:
        self.observed: list[tuple[str, str, int, float]] = []

    def render(self) -> tuple[bytes, str]:
        return b"skydns_up 1\n", "text/plain; version=0.0.4; charset=utf-8"

    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None:
        self.observed.append((route, method, code, seconds))


class APITestCase(SynchronousTestCase):
    secret: Optional[str] = None

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.registry = Registry()
        self.cluster = ControlledCluster(self.registry, self.clock)
        self.metrics: Optional[FakeMetrics] = None
        self.build()

    def build(self) -> None:
        self.api = make_api(
            self.cluster, self.clock, "skydns.local", secret=self.secret, metrics=self.metrics
        )
        self.treq: Any = StubTreq(self.api.resource())

    def start(self, method: str, path: str, body: Any = None, **kw: Any) -> Deferred[Any]:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        return self.treq.request(method, BASE + path, data=body, **kw)

    def finish(self, d: Deferred[Any]) -> Response:
        self.treq.flush()
        response = self.successResultOf(d)
        content = self.treq.content(response)
        self.treq.flush()
        return Response(response.code, response.headers, self.successResultOf(content))

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Response:
        return self.finish(self.start(method, path, body, **kw))

    def assertError(self, response: Response, code: int, mentions: str = "") -> None:
        """``response`` is a JSON error with this code whose message names ``mentions``."""
        self.assertEqual(response.code, code, response.raw)
        self.assertEqual(response.header("Content-Type"), "application/json")
        message = response.json()["error"]
        self.assertIsInstance(message, str)
        self.assertIn(mentions.lower(), message.lower())

    def register(self, uuid: str, **changes: Any) -> Response:
        response = self.call("PUT", f"/skydns/services/{uuid}", service(**changes))
        self.assertEqual(response.code, 201, response.raw)
        return response


class ServiceTests(APITestCase):
    def test_put_then_get(self) -> None:
        """PUT answers 201 with the service JSON; GET then shows the same service."""
        put = self.register("1001")
        self.assertEqual(put.header("Content-Type"), "application/json")
        self.assertEqual(put.json()["UUID"], "1001")
        got = self.call("GET", "/skydns/services/1001")
        self.assertEqual(got.code, 200)
        self.assertEqual(got.header("Content-Type"), "application/json")
        body = got.json()
        for key, value in RAILS.items():
            self.assertEqual(body[key], value, key)
        self.assertEqual(body["UUID"], "1001")

    def test_write_carries_now(self) -> None:
        """The Register command goes through propose with now = clock.seconds()."""
        self.clock.advance(5)
        self.register("1001")
        [command] = self.cluster.proposed
        assert isinstance(command, Register)
        self.assertEqual(command.now, START + 5)
        self.assertEqual(command.service.uuid, "1001")

    def test_put_answer_shows_granted_lease(self) -> None:
        """The 201 body shows the whole TTL granted, even if the commit took time."""
        held: Deferred[Applied] = Deferred()
        self.cluster.propose_result = held
        d = self.start("PUT", "/skydns/services/1001", service(TTL=30))
        self.treq.flush()
        self.clock.advance(2)
        [command] = self.cluster.proposed
        held.callback(self.registry.apply(command))
        response = self.finish(d)
        self.assertEqual(response.code, 201)
        self.assertEqual(response.json()["TTL"], 30)

    def test_keys_case_insensitive(self) -> None:
        """Lower-case JSON keys register the same service as capitalised ones."""
        lower = {k.lower(): v for k, v in RAILS.items()}
        self.assertEqual(self.call("PUT", "/skydns/services/1001", lower).code, 201)
        body = self.call("GET", "/skydns/services/1001").json()
        self.assertEqual((body["Name"], body["Host"], body["Port"]), ("rails", RAILS["Host"], 9000))

    def test_form_content_type_read_as_json(self) -> None:
        """A body sent as curl -d (form encoding) is still read as JSON."""
        response = self.call(
            "PUT",
            "/skydns/services/1001",
            json.dumps(RAILS).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self.assertEqual(response.code, 201, response.raw)
        self.assertEqual(self.call("GET", "/skydns/services/1001").json()["Port"], 9000)

    def test_missing_host_400(self) -> None:
        """A body without Host gets 400 naming Host, and nothing is registered."""
        body = service()
        del body["Host"]
        self.assertError(self.call("PUT", "/skydns/services/1001", body), 400, "Host")
        self.assertEqual(self.call("GET", "/skydns/services/1001").code, 404)
        self.assertEqual(self.cluster.proposed, [])

    def test_zero_port_400(self) -> None:
        self.assertError(self.call("PUT", "/skydns/services/1001", service(Port=0)), 400, "Port")

    def test_not_json_400(self) -> None:
        self.assertError(self.call("PUT", "/skydns/services/1001", b"Name=rails"), 400)

    def test_bad_uuid_400(self) -> None:
        """A UUID that cannot be one DNS label is refused."""
        response = self.call("PUT", "/skydns/services/" + "u" * 64, service())
        self.assertError(response, 400, "UUID")

    def test_duplicate_409(self) -> None:
        """A second PUT of the same UUID gets 409 and leaves the first alone."""
        self.register("1001")
        again = self.call("PUT", "/skydns/services/1001", service(Port=9999))
        self.assertError(again, 409, "1001")
        self.assertEqual(self.call("GET", "/skydns/services/1001").json()["Port"], 9000)

    def test_get_unknown_404(self) -> None:
        self.assertError(self.call("GET", "/skydns/services/nope"), 404, "nope")

    def test_ttl_is_remaining(self) -> None:
        """GET shows the remaining lease as TTL."""
        self.register("1001")
        self.clock.advance(3)
        self.assertEqual(self.call("GET", "/skydns/services/1001").json()["TTL"], 7)

    def test_lease_expiry(self) -> None:
        """Once its lease runs out the service is gone from GET and queries."""
        self.register("1001")
        self.clock.advance(11)
        self.assertEqual(self.call("GET", "/skydns/services/1001").code, 404)
        self.assertEqual(self.call("GET", "/skydns/services/").json(), [])

    def test_reregister_after_expiry(self) -> None:
        """A UUID whose lease ran out can be registered again (no 409)."""
        self.register("1001")
        self.clock.advance(11)
        self.assertEqual(self.register("1001", Port=9001).json()["Port"], 9001)

    def test_delete_expired_404(self) -> None:
        self.register("1001")
        self.clock.advance(11)
        self.assertError(self.call("DELETE", "/skydns/services/1001"), 404)

    def test_uuid_case_insensitive(self) -> None:
        self.register("AbC")
        self.assertEqual(self.call("GET", "/skydns/services/abc").json()["UUID"], "AbC")
        self.assertEqual(self.call("DELETE", "/skydns/services/ABC").code, 200)

    def test_patch_renews(self) -> None:
        """PATCH {"TTL": n} renews the lease for n seconds from now."""
        self.register("1001")
        self.clock.advance(8)
        response = self.call("PATCH", "/skydns/services/1001", {"TTL": 30})
        self.assertEqual(response.code, 200, response.raw)
        self.assertEqual(response.json()["TTL"], 30)
        command = self.cluster.proposed[-1]
        self.assertEqual(command, Renew("1001", 30, START + 8))
        self.clock.advance(25)
        self.assertEqual(self.call("GET", "/skydns/services/1001").json()["TTL"], 5)

    def test_patch_lower_case_key(self) -> None:
        self.register("1001")
        self.assertEqual(self.call("PATCH", "/skydns/services/1001", {"ttl": 30}).code, 200)

    def test_register_says_where_dns_finds_it(self) -> None:
        """The 201 answer's DNS lists the names the instance answers under:
        with no Environment that position is *; regions and environments
        count no empty value."""
        response = self.call("PUT", "/skydns/services/w1", {"Host": "10.0.0.1", "Port": 80,
                                                           "Name": "Web"})  # fmt: skip
        self.assertEqual(response.code, 201)
        self.assertEqual(response.json()["DNS"], ["web.*.skydns.local.", "w1.skydns.local."])
        self.assertEqual(self.call("GET", "/skydns/environments/").json(), {})
        self.assertEqual(self.call("GET", "/skydns/regions/").json(), {})

    def test_patch_bad_body_400(self) -> None:
        self.register("1001")
        self.assertError(self.call("PATCH", "/skydns/services/1001", {"TTL": -1}), 400, "TTL")
        self.assertError(self.call("PATCH", "/skydns/services/1001", {}), 400, "TTL")
        self.assertError(self.call("PATCH", "/skydns/services/1001", {"Drain": "yes"}), 400,
                         "Drain")  # fmt: skip

    def test_patch_ttl_zero_expires_now(self) -> None:
        """A v1 PATCH {"TTL": 0} (skydnsctl update UUID 0) removes the
        instance now, as its lease running out would: 200 with it, then 404."""
        self.register("1001")
        response = self.call("PATCH", "/skydns/services/1001", {"TTL": 0})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["UUID"], "1001")
        self.assertEqual(self.cluster.proposed[-1], Unregister("1001", START))
        self.assertEqual(self.call("GET", "/skydns/services/1001").code, 404)
        self.assertError(self.call("PATCH", "/skydns/services/1001", {"TTL": 0}), 404)

    def test_drain_and_undrain(self) -> None:
        """{"Drain": true} keeps the instance registered, its lease running,
        shown with "Drain": true, and out of DNS-side queries; {"Drain":
        false} puts it back.  With a TTL too, the lease is renewed as well."""
        self.register("1001")
        response = self.call("PATCH", "/skydns/services/1001", {"drain": True})
        self.assertEqual(response.code, 200)
        self.assertEqual((response.json()["Drain"], response.json()["TTL"]), (True, 10))
        self.assertEqual(self.cluster.proposed[-1], Drain("1001", True, START))
        self.assertTrue(self.call("GET", "/skydns/services/1001").json()["Drain"])
        listed = self.call("GET", "/skydns/services/?query=rails.production").json()
        self.assertEqual([s["Drain"] for s in listed], [True])
        self.assertEqual(self.cluster.registry.query(Pattern(), START, drained=False), [])
        self.clock.advance(5)
        response = self.call("PATCH", "/skydns/services/1001", {"Drain": False, "TTL": 60})
        self.assertEqual((response.json()["Drain"], response.json()["TTL"]), (False, 60))
        self.assertEqual(len(self.cluster.registry.query(Pattern(), START + 5, drained=False)), 1)
        self.assertError(self.call("PATCH", "/skydns/services/nope", {"Drain": True}), 404)

    def test_patch_unknown_404(self) -> None:
        self.assertError(self.call("PATCH", "/skydns/services/nope", {"TTL": 30}), 404)

    def test_patch_expired_404(self) -> None:
        """A lease that already ran out cannot be renewed."""
        self.register("1001")
        self.clock.advance(11)
        self.assertError(self.call("PATCH", "/skydns/services/1001", {"TTL": 30}), 404)

    def test_delete(self) -> None:
        """DELETE answers 200 with the removed service, which is then gone."""
        self.register("1001")
        response = self.call("DELETE", "/skydns/services/1001")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["UUID"], "1001")
        self.assertEqual(self.cluster.proposed[-1], Unregister("1001", START))
        self.assertEqual(self.call("GET", "/skydns/services/1001").code, 404)

    def test_delete_unknown_404(self) -> None:
        self.assertError(self.call("DELETE", "/skydns/services/nope"), 404)

    def test_body_too_large_413(self) -> None:
        big = service(Name="rails", Padding="x" * MAX_BODY)
        self.assertError(self.call("PUT", "/skydns/services/1001", big), 413)
        self.assertEqual(self.cluster.proposed, [])


class QueryTests(APITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.register("1", Region="east")
        self.register("2", Region="west")
        self.register("3", Name="redis", Region="east", Environment="staging")

    def uuids(self, path: str) -> list[str]:
        response = self.call("GET", path)
        self.assertEqual(response.code, 200, response.raw)
        self.assertEqual(response.header("Content-Type"), "application/json")
        return sorted(s["UUID"] for s in response.json())

    def test_query_pattern(self) -> None:
        """?query= takes a DNS-style pattern, with or without the domain."""
        self.assertEqual(self.uuids("/skydns/services/?query=rails.production"), ["1", "2"])
        self.assertEqual(
            self.uuids("/skydns/services/?query=east.rails.production.skydns.local"), ["1"]
        )
        self.assertEqual(self.uuids("/skydns/services/?query=*.east.any.any"), ["1", "3"])
        self.assertEqual(self.uuids("/skydns/services/?query=RAILS.Production"), ["1", "2"])

    def test_no_query_lists_all(self) -> None:
        self.assertEqual(self.uuids("/skydns/services/"), ["1", "2", "3"])

    def test_pages(self) -> None:
        """``?limit=N&after=UUID`` pages through the list in UUID order;
        ``X-SkyDNS-Next`` names the UUID to ask after until the last page;
        a bad limit is a 400 naming it."""
        first = self.call("GET", "/skydns/services/?limit=2")
        self.assertEqual([s["UUID"] for s in first.json()], ["1", "2"])
        self.assertEqual(first.header("X-SkyDNS-Next"), "2")
        last = self.call("GET", "/skydns/services/?limit=2&after=2")
        self.assertEqual([s["UUID"] for s in last.json()], ["3"])
        self.assertIsNone(last.header("X-SkyDNS-Next"))
        east = self.call("GET", "/skydns/services/?query=*.east.any.any&limit=1&after=1")
        self.assertEqual([s["UUID"] for s in east.json()], ["3"])
        bad = self.call("GET", "/skydns/services/?limit=0")
        self.assertEqual((bad.code, bad.json()["field"]), (400, "limit"))
        self.assertEqual(self.uuids("/skydns/services"), ["1", "2", "3"])
        self.assertEqual(self.uuids("/skydns/services?query="), ["1", "2", "3"])

    def test_query_shows_remaining_ttl(self) -> None:
        self.clock.advance(4)
        [one] = self.call("GET", "/skydns/services/?query=east.rails.production").json()
        self.assertEqual(one["TTL"], 6)

    def test_bad_pattern_400(self) -> None:
        """More than six labels before the domain is not a pattern."""
        response = self.call("GET", "/skydns/services/?query=a.b.c.d.e.f.g.h")
        self.assertError(response, 400, "query")

    def test_regions(self) -> None:
        response = self.call("GET", "/skydns/regions/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"east": 2, "west": 1})
        self.assertEqual(self.call("GET", "/skydns/regions").json(), {"east": 2, "west": 1})

    def test_environments(self) -> None:
        response = self.call("GET", "/skydns/environments/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"production": 2, "staging": 1})

    def test_counts_forget_expired(self) -> None:
        self.clock.advance(11)
        self.assertEqual(self.call("GET", "/skydns/regions/").json(), {})
        self.assertEqual(self.call("GET", "/skydns/environments/").json(), {})

    def test_consistent_awaits_read_barrier(self) -> None:
        """?consistent=true answers only after cluster.read_barrier() fires."""
        self.cluster.barrier = Deferred()
        d = self.start("GET", "/skydns/services/1?consistent=true")
        self.treq.flush()
        self.assertNoResult(d)
        self.cluster.barrier.callback(None)
        response = self.finish(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.cluster.barriers, 1)

    def test_plain_get_skips_barrier(self) -> None:
        self.cluster.barrier = Deferred()
        self.assertEqual(self.call("GET", "/skydns/services/1").code, 200)
        self.assertEqual(self.cluster.barriers, 0)

    def test_consistent_query(self) -> None:
        self.assertEqual(self.uuids("/skydns/services/?query=west.any.any&consistent=true"), ["2"])
        self.assertEqual(self.cluster.barriers, 1)

    def test_barrier_not_leader_503(self) -> None:
        self.cluster.barrier = fail(NotLeader())
        response = self.call("GET", "/skydns/services/1?consistent=true")
        self.assertError(response, 503)
        self.assertEqual(response.header("Retry-After"), "1")


class CallbackTests(APITestCase):
    CALLBACK = {
        "Name": "rails",
        "Environment": "production",
        "Reply": "10.0.0.9",
        "Port": 5441,
    }

    def test_callback_201(self) -> None:
        """A callback matching a registered service is accepted with 201."""
        self.register("1001")
        response = self.call("PUT", "/skydns/callbacks/cb1", self.CALLBACK)
        self.assertEqual(response.code, 201, response.raw)
        self.assertEqual(response.header("Content-Type"), "application/json")
        self.assertEqual(response.json()["Reply"], "10.0.0.9")
        command = self.cluster.proposed[-1]
        assert isinstance(command, AddCallback)
        self.assertEqual((command.callback.uuid, command.now), ("cb1", START))

    def test_callback_no_service_404(self) -> None:
        self.register("1001", Name="redis")
        self.assertError(self.call("PUT", "/skydns/callbacks/cb1", self.CALLBACK), 404)

    def test_callback_bad_body_400(self) -> None:
        body = dict(self.CALLBACK)
        del body["Reply"]
        self.assertError(self.call("PUT", "/skydns/callbacks/cb1", body), 400, "Reply")


class OperationsTests(APITestCase):
    def test_health(self) -> None:
        response = self.call("GET", "/health")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), {"status": "ok"})

    def test_ready(self) -> None:
        """/ready follows cluster.is_ready(): 200, else 503."""
        self.assertEqual(self.call("GET", "/ready").code, 200)
        self.cluster.ready = False
        response = self.call("GET", "/ready")
        self.assertEqual(response.code, 503)
        self.assertEqual(
            response.json(),
            {"ready": False, "reason": "catching up with the leader's commit index"},
        )

    def test_not_ready_says_why(self) -> None:
        """A 503 from /ready names the reason an operator can act on."""
        self.cluster.ready = False
        base = self.cluster.status()
        for status, reason in (
            ({**base, "leader": None}, "no leader is known"),
            ({**base, "role": "removed"}, "this node was removed from the cluster"),
        ):
            self.cluster.status = lambda status=status: status  # type: ignore[method-assign]
            self.assertEqual(self.call("GET", "/ready").json()["reason"], reason)

    def test_metrics_absent_404(self) -> None:
        self.assertError(self.call("GET", "/metrics"), 404)

    def test_metrics(self) -> None:
        self.metrics = FakeMetrics()
        self.build()
        response = self.call("GET", "/metrics")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.raw, b"skydns_up 1\n")
        self.assertTrue(response.header("Content-Type").startswith("text/plain"))  # type: ignore[union-attr]
        self.assertEqual(self.metrics.observed, [("/metrics", "GET", 200, 0.0)])

    def test_cluster_status(self) -> None:
        self.register("1001")
        response = self.call("GET", "/skydns/cluster")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json(), self.cluster.status())

    def test_unknown_route_404(self) -> None:
        self.assertError(self.call("GET", "/nowhere"), 404)
        self.assertError(self.call("GET", "/skydns/nowhere"), 404)

    def test_wrong_method_405(self) -> None:
        response = self.call("POST", "/skydns/services/1001", service())
        self.assertError(response, 405)
        allowed = (response.header("Allow") or "").split(", ")
        self.assertEqual(sorted(set(allowed) - {"HEAD"}), ["DELETE", "GET", "PATCH", "PUT"])
        self.assertError(self.call("DELETE", "/skydns/regions/"), 405)


class ClusterFailureTests(APITestCase):
    def test_not_leader_503(self) -> None:
        """A write the cluster cannot take gets 503 with Retry-After."""
        self.cluster.propose_error = NotLeader("no leader")
        for method, path, body in [
            ("PUT", "/skydns/services/1001", service()),
            ("PATCH", "/skydns/services/1001", {"TTL": 5}),
            ("DELETE", "/skydns/services/1001", None),
            ("PUT", "/skydns/callbacks/cb", {"Reply": "10.0.0.1", "Port": 1}),
        ]:
            response = self.call(method, path, body)
            self.assertError(response, 503)
            self.assertEqual(response.header("Retry-After"), "1")

    def test_propose_timeout_503(self) -> None:
        """A proposal the cluster times out is a 503 with Retry-After and one
        text, whichever TimeoutError it fails with (the Raft node's is the
        builtin one); the API arms no timer of its own for a write."""
        timeout_text = "the cluster did not commit the write in time; it may still be applied"
        writes = [
            ("PUT", "/skydns/services/1001", service()),
            ("PATCH", "/skydns/services/1001", {"TTL": 5}),
            ("DELETE", "/skydns/services/1001", None),
            ("PUT", "/skydns/callbacks/cb", {"Reply": "10.0.0.1", "Port": 1}),
        ]
        for error in [TimeoutError("not committed in time"), defer.TimeoutError()]:
            for method, path, body in writes:
                held: Deferred[Applied] = Deferred()
                self.cluster.propose_result = held
                d = self.start(method, path, body)
                self.treq.flush()
                self.assertNoResult(d)
                self.assertEqual(self.clock.getDelayedCalls(), [])
                held.errback(error)
                response = self.finish(d)
                self.assertEqual(response.code, 503, (method, path, error))
                self.assertEqual(response.json(), {"error": timeout_text})
                self.assertEqual(response.header("Retry-After"), "1")

    def test_raft_proposal_timeout_503(self) -> None:
        """Over a Raft leader that cannot commit, the node's own proposal
        timeout answers the client: 503 with Retry-After, not a 500."""
        cluster = RaftCluster(save_delay=0.01)
        leader = cluster.elect()
        cluster.save_delay = 60.0  # nothing more becomes durable, so nothing commits
        client = StubTreq(make_api(leader, cluster.clock, "skydns.local").resource())
        d = client.put(BASE + "/skydns/services/1001", data=json.dumps(service()).encode())
        client.flush()
        cluster.run(NodeOptions().proposal_timeout - 1)
        self.assertNoResult(d)
        cluster.run(2)
        self.assertTrue(leader.is_leader())
        client.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders("Retry-After"), ["1"])
        self.assertEqual(
            self.successResultOf(response.json()),
            {"error": "the cluster did not commit the write in time; it may still be applied"},
        )

    def test_unexpected_error_500(self) -> None:
        """An unexpected exception is logged and answered with a JSON 500."""
        self.cluster.propose_error = ZeroDivisionError("boom")
        self.assertError(self.call("PUT", "/skydns/services/1001", service()), 500)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.call("GET", "/health").code, 200)


class SecretTests(APITestCase):
    secret = "s3cret"

    def test_missing_secret_401(self) -> None:
        response = self.call("PUT", "/skydns/services/1001", service())
        self.assertError(response, 401)
        self.assertIsNotNone(response.header("WWW-Authenticate"))
        self.assertEqual(self.cluster.proposed, [])
        for path in ["/skydns/services/", "/skydns/regions/", "/skydns/cluster", "/skydns/x"]:
            self.assertError(self.call("GET", path), 401)

    def test_wrong_secret_401(self) -> None:
        for value in ["wrong", "Bearer wrong", "s3cret2", "Bearer ", ""]:
            response = self.call(
                "GET", "/skydns/services/", headers={"Authorization": value}
            )
            self.assertError(response, 401)

    def test_raw_secret(self) -> None:
        headers = {"Authorization": "s3cret"}
        put = self.call("PUT", "/skydns/services/1", service(), headers=headers)
        self.assertEqual(put.code, 201)
        self.assertEqual(self.call("GET", "/skydns/services/1", headers=headers).code, 200)

    def test_bearer_secret(self) -> None:
        headers = {"Authorization": "Bearer s3cret"}
        put = self.call("PUT", "/skydns/services/1", service(), headers=headers)
        self.assertEqual(put.code, 201)
        self.assertEqual(self.call("GET", "/skydns/services/1", headers=headers).code, 200)

    def test_operational_endpoints_open(self) -> None:
        """/health and /ready answer without the secret."""
        self.assertEqual(self.call("GET", "/health").code, 200)
        self.assertEqual(self.call("GET", "/ready").code, 200)


class ProposalRefusedTests(SynchronousTestCase):
    """A write the cluster refuses as invalid (too big to replicate) is a 400."""

    def test_validation_error_from_propose_is_400(self) -> None:
        from skydns.bodies import ValidationError

        clock = Clock()
        registry = Registry()
        cluster = LocalCluster(registry)
        refused = ValidationError("body", "too big")
        cluster.propose = lambda command: fail(refused)  # type: ignore[method-assign]
        client = StubTreq(make_api(cluster, clock, "skydns.local").resource())
        response = self.successResultOf(
            client.put(
                "http://skydns/skydns/services/1001",
                data=b'{"Host": "10.0.0.1", "Port": 80}',
            )
        )
        self.assertEqual(response.code, 400)
        body = self.successResultOf(response.json())
        self.assertEqual(body["field"], "body")
        self.assertEqual(len(registry), 0)


class DoubleSlashTests(SynchronousTestCase):
    """A path with an empty segment names nothing: 404, not a redirect."""

    def test_encoded_slash_in_an_id_is_not_found(self) -> None:
        cluster = LocalCluster(Registry())
        client = StubTreq(make_api(cluster, Clock(), "skydns.local").resource())
        response = self.successResultOf(
            client.delete("http://skydns/skydns/cluster/members/%2F0")
        )
        self.assertEqual(response.code, 404)
