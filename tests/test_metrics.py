"""Metrics: what the HTTP API and the apply listener record, and the text
format ``GET /metrics`` serves (parsed back with prometheus_client's parser)."""

from __future__ import annotations

from typing import Any, Optional

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from skydns.commands import (
    AddCallback,
    Checkpoint,
    Expire,
    GrantLease,
    Register,
    Renew,
    RevokeLease,
    Unregister,
)
from skydns.http.api import make_api
from skydns.metrics import CLIENT_CLOSED, UNMATCHED_ROUTE, MeteredResource, Metrics, route_template
from skydns.names import Callback, Service
from skydns.registry import Applied, Instance, Outcome, Registry, Removal
from tests.test_api import START, APITestCase, service

SERVICE = "/skydns/services/{uuid}"


def families(metrics: Metrics) -> dict[str, Any]:
    """The exposition text parsed back, by family name."""
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}


def label_values(metrics: Metrics) -> set[str]:
    """Every label value in the exposition."""
    return {v for f in families(metrics).values() for s in f.samples for v in s.labels.values()}


def sample(metrics: Metrics, family: str, suffix: str = "", **labels: str) -> Optional[float]:
    """The value of one sample, found by parsing the text format."""
    for s in families(metrics)[family].samples:
        if s.name == family + suffix and s.labels == labels:
            return float(s.value)
    return None


class HTTPMetricsTests(APITestCase):
    def setUp(self) -> None:
        super().setUp()
        self.metrics: Any = Metrics()
        self.build()

    def requests(self, route: str, method: str, code: str) -> Optional[float]:
        return sample(
            self.metrics, "skydns_http_requests", "_total", route=route, method=method, code=code
        )

    def test_counted_by_route_template(self) -> None:
        """Requests for different UUIDs count under one route template, by
        method and status code; the raw path never becomes a label."""
        self.register("1001")
        self.register("1002")
        self.call("PUT", "/skydns/services/1001", service())
        self.call("GET", "/skydns/services/1001")
        self.call("GET", "/skydns/services/nope")
        self.assertEqual(self.requests(SERVICE, "PUT", "201"), 2.0)
        self.assertEqual(self.requests(SERVICE, "PUT", "409"), 1.0)
        self.assertEqual(self.requests(SERVICE, "GET", "200"), 1.0)
        self.assertEqual(self.requests(SERVICE, "GET", "404"), 1.0)
        values = " ".join(label_values(self.metrics))
        self.assertNotIn("1001", values)
        self.assertNotIn("nope", values)

    def test_other_routes(self) -> None:
        """Each route has its own template: list, regions, callbacks, health."""
        self.register("1001")
        self.call("GET", "/skydns/services/?query=rails.production")
        self.call("GET", "/skydns/regions/")
        self.call("PUT", "/skydns/callbacks/cb1", {"Reply": "10.0.0.1", "Port": 5441})
        self.call("GET", "/health")
        self.assertEqual(self.requests("/skydns/services/", "GET", "200"), 1.0)
        self.assertEqual(self.requests("/skydns/regions/", "GET", "200"), 1.0)
        self.assertEqual(self.requests("/skydns/callbacks/{uuid}", "PUT", "201"), 1.0)
        self.assertEqual(self.requests("/health", "GET", "200"), 1.0)

    def test_unknown_path_unmatched(self) -> None:
        """A path no route matches counts as route "unmatched" with its 404."""
        self.call("GET", "/wp-admin/setup.php")
        self.call("GET", "/skydns/nowhere/at/all")
        self.assertEqual(self.requests(UNMATCHED_ROUTE, "GET", "404"), 2.0)
        self.assertNotIn("wp-admin", " ".join(label_values(self.metrics)))

    def test_wrong_method_keeps_route(self) -> None:
        """A 405 is counted under the route the path belongs to."""
        self.call("POST", "/skydns/services/1001", service())
        self.assertEqual(self.requests(SERVICE, "POST", "405"), 1.0)

    def test_odd_method_bounded(self) -> None:
        """Methods outside the usual set share the label OTHER."""
        self.call("BREW", "/health")
        self.assertEqual(self.requests("/health", "OTHER", "405"), 1.0)

    def test_latency_uses_injected_clock(self) -> None:
        """The latency histogram measures with the API's clock: a write that
        waits 2 s for its commit is observed as 2 s."""
        held: Deferred[Applied] = Deferred()
        self.cluster.propose_result = held
        d = self.start("PUT", "/skydns/services/1001", service())
        self.treq.flush()
        self.clock.advance(2)
        held.callback(self.registry.apply(self.cluster.proposed[0]))
        self.assertEqual(self.finish(d).code, 201)
        labels = {"route": SERVICE}
        self.assertEqual(sample(self.metrics, "skydns_http_request_duration_seconds",
                                "_sum", **labels), 2.0)  # fmt: skip
        self.assertEqual(sample(self.metrics, "skydns_http_request_duration_seconds",
                                "_count", **labels), 1.0)  # fmt: skip
        self.assertEqual(sample(self.metrics, "skydns_http_request_duration_seconds",
                                "_bucket", le="1.0", **labels), 0.0)  # fmt: skip
        self.assertEqual(sample(self.metrics, "skydns_http_request_duration_seconds",
                                "_bucket", le="2.5", **labels), 1.0)  # fmt: skip

    def test_metrics_endpoint_serves_text(self) -> None:
        """GET /metrics serves the registry in the text format, with the
        request counts of earlier requests in it."""
        self.register("1001")
        response = self.call("GET", "/metrics")
        self.assertEqual(response.code, 200)
        self.assertTrue((response.header("Content-Type") or "").startswith("text/plain"))
        parsed = {f.name for f in text_string_to_metric_families(response.raw.decode())}
        self.assertIn("skydns_http_requests", parsed)
        self.assertIn(b'route="/skydns/services/{uuid}"', response.raw)


class AbortedRequestTests(SynchronousTestCase):
    def test_client_gone_counts_499(self) -> None:
        """A request whose connection is lost before the answer counts as 499."""

        class Slow(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                return NOT_DONE_YET

        clock = Clock()
        metrics = Metrics()
        api = make_api(None, clock, "skydns.local", metrics=metrics)  # type: ignore[arg-type]
        resource = MeteredResource(Slow(), api.app.url_map, clock, metrics)
        request = DummyRequest([b"health"])
        resource.render(request)  # type: ignore[arg-type]
        clock.advance(3)
        request.processingFailed(Failure(ConnectionLost()))
        self.assertEqual(
            metrics.registry.get_sample_value(
                "skydns_http_requests_total",
                {"route": "/health", "method": "GET", "code": str(CLIENT_CLOSED)},
            ),
            1.0,
        )


class RouteTemplateTests(SynchronousTestCase):
    def test_templates(self) -> None:
        """werkzeug rules become OpenAPI templates, converters dropped."""
        self.assertEqual(route_template("/skydns/services/<uuid>"), SERVICE)
        self.assertEqual(route_template("/a/<string:b>/c/<int:d>"), "/a/{b}/c/{d}")
        self.assertEqual(route_template("/health"), "/health")


def _service(uuid: str) -> Service:
    return Service(uuid, "rails", "production", "east", "1.0", "10.0.0.1", 80, 10)


class ApplyListenerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.metrics = Metrics()

    def changes(self, op: str, status: str) -> Optional[float]:
        return self.metrics.registry.get_sample_value(
            "skydns_registry_changes_total", {"op": op, "status": status}
        )

    def test_changes_by_op_and_status(self) -> None:
        """Every applied command counts by op and status, on every node
        (live or not)."""
        on = self.metrics.on_applied
        on(Register(_service("a"), START), Applied(Outcome.OK), True)
        on(Register(_service("b"), START), Applied(Outcome.OK), False)
        on(Register(_service("a"), START), Applied(Outcome.CONFLICT), True)
        on(Renew("a", 30, START), Applied(Outcome.OK), True)
        on(Unregister("x", START), Applied(Outcome.NOT_FOUND), True)
        cb = Callback("cb", "rails", "", "", "", "", "10.0.0.9", 1)
        on(AddCallback(cb, START), Applied(Outcome.OK), True)
        self.assertEqual(self.changes("register", "ok"), 2.0)
        self.assertEqual(self.changes("register", "conflict"), 1.0)
        self.assertEqual(self.changes("renew", "ok"), 1.0)
        self.assertEqual(self.changes("unregister", "not_found"), 1.0)
        self.assertEqual(self.changes("callback", "ok"), 1.0)

    def test_label_children_looked_up_once(self) -> None:
        """labels() (which validates and locks) runs once per op and status,
        not per applied command; a command type of its own counts as other."""
        calls: list[tuple[str, ...]] = []
        labels = self.metrics.registry_changes.labels

        def counting(*values: str) -> Any:
            calls.append(values)
            return labels(*values)

        self.metrics.registry_changes.labels = counting  # type: ignore[method-assign]
        for _ in range(3):
            self.metrics.on_applied(Renew("a", 30, START), Applied(Outcome.OK), True)
            self.metrics.on_applied(Renew("a", 30, START), Applied(Outcome.NOT_FOUND), True)
            self.metrics.on_applied(object(), Applied(Outcome.OK), True)  # type: ignore[arg-type]
        self.assertEqual(calls, [("renew", "ok"), ("renew", "not_found"), ("other", "ok")])
        self.assertEqual(self.changes("renew", "ok"), 3.0)
        self.assertEqual(self.changes("renew", "not_found"), 3.0)
        self.assertEqual(self.changes("other", "ok"), 3.0)

    def test_expirations_count_removed_instances(self) -> None:
        """An Expire that removes two instances adds two expirations; an
        Unregister adds none."""
        removals = tuple(Removal(Instance(_service(u), START), ()) for u in ("a", "b"))
        self.metrics.on_applied(Expire(("a", "b", "c"), START), Applied(Outcome.OK, removals), True)
        self.metrics.on_applied(Unregister("d", START), Applied(Outcome.OK, removals[:1]), True)
        self.metrics.on_applied(Expire(("e",), START), Applied(Outcome.OK), False)
        self.assertEqual(
            self.metrics.registry.get_sample_value("skydns_expirations_total"), 2.0
        )
        self.assertEqual(self.changes("expire", "ok"), 2.0)

    def test_instances_gauge_follows_registry(self) -> None:
        """The instances gauge reads the registry's size at each scrape."""
        registry = Registry()
        self.metrics.watch_instances(lambda: len(registry))
        registry.apply(Register(_service("a"), START))
        self.assertEqual(sample(self.metrics, "skydns_registered_instances"), 1.0)
        registry.apply(Unregister("a", START))
        self.assertEqual(sample(self.metrics, "skydns_registered_instances"), 0.0)

    def test_lease_gauges_follow_registry_and_lessor(self) -> None:
        """The lease gauges read the registry's leases and the lessor's
        deadlines at each scrape."""
        registry = Registry()
        held: list[int] = [0]
        self.metrics.watch_leases(registry.lease_count, lambda: held[0])
        registry.apply(GrantLease("00000000000000a1", 30, START))
        held[0] = 3
        self.assertEqual(sample(self.metrics, "skydns_leases"), 1.0)
        self.assertEqual(sample(self.metrics, "skydns_lease_deadlines"), 3.0)
        registry.apply(RevokeLease(("00000000000000a1",), START))
        self.assertEqual(sample(self.metrics, "skydns_leases"), 0.0)

    def test_lease_commands_are_counted_by_op(self) -> None:
        self.metrics.on_applied(GrantLease("00000000000000a1", 30, START), Applied(Outcome.OK),
                                True)  # fmt: skip
        self.metrics.on_applied(Checkpoint((), (), START), Applied(Outcome.OK), True)
        self.assertEqual(self.changes("grant", "ok"), 1.0)
        self.assertEqual(self.changes("checkpoint", "ok"), 1.0)

    def test_text_format_parses(self) -> None:
        """The whole exposition parses, and has every family SkyDNS documents."""
        self.metrics.set_role("leader")
        names = set(families(self.metrics))
        for name in [
            "skydns_dns_requests", "skydns_dns_responses", "skydns_dns_request_duration_seconds",
            "skydns_dns_cache", "skydns_forward_requests", "skydns_forward_failures",
            "skydns_registered_instances", "skydns_expirations", "skydns_registry_changes",
            "skydns_http_requests", "skydns_http_request_duration_seconds", "skydns_raft_role",
            "skydns_raft_term", "skydns_raft_commit_index", "skydns_raft_applied_index",
            "skydns_raft_elections", "skydns_raft_leader_changes",
            "skydns_raft_fsync_duration_seconds",
        ]:  # fmt: skip
            self.assertIn(name, names)
        self.assertEqual(sample(self.metrics, "skydns_raft_role", role="leader"), 1.0)
        self.assertEqual(sample(self.metrics, "skydns_raft_role", role="follower"), 0.0)


class ProcessCollectorTests(SynchronousTestCase):
    def test_boot_time_without_proc_stat(self) -> None:
        """Where /proc/stat is hidden (systemd ProcSubset=pid) the process
        collector still knows the boot time, so process_* are exported."""
        import time

        from prometheus_client import CollectorRegistry

        from skydns.metrics import _ProcessCollector

        collector = _ProcessCollector(proc="/nonexistent", registry=CollectorRegistry())
        booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        self.assertLess(abs(collector._btime - booted), 5)
