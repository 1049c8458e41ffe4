"""MeteredResource names a request's route by comparing path segments with
the rules; that must agree with werkzeug's own match for every path."""

from __future__ import annotations

from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyRequest
from werkzeug.routing import Map, Rule

from skydns.http.api import API
from skydns.metrics import UNMATCHED_ROUTE, MeteredResource


class _Nothing:
    def observe_http(self, route: str, method: str, code: int, seconds: float) -> None:
        pass


def _pair(url_map: Map) -> tuple[MeteredResource, MeteredResource]:
    quick = MeteredResource(Resource(), url_map, Clock(), _Nothing())
    slow = MeteredResource(Resource(), url_map, Clock(), _Nothing())
    slow._by_length = None  # werkzeug only
    return quick, slow


def _request(segments: list[str], method: bytes) -> Request:
    request = DummyRequest([s.encode("utf-8") for s in segments])
    request.method = method
    return cast(Request, request)


SEGMENTS = st.sampled_from(
    ["skydns", "services", "cluster", "members", "regions", "environments", "callbacks",
     "health", "ready", "metrics", "", "abc", "n2", "x y", "%2F"]
)  # fmt: skip
METHODS = st.sampled_from([b"GET", b"PUT", b"PATCH", b"DELETE", b"POST", b"HEAD", b"BREW"])


class QuickRouteTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(st.lists(SEGMENTS, min_size=0, max_size=5), METHODS)
    def test_agrees_with_werkzeug_on_the_api(self, segments: list[str], method: bytes) -> None:
        quick, slow = _pair(API.app.url_map)
        self.assertEqual(
            quick.route(_request(segments, method)), slow.route(_request(segments, method))
        )

    def test_agrees_with_werkzeug_around_every_rule(self) -> None:
        """Each rule's path with its variables empty or filled, with a slash
        more or a segment less, for every method."""
        quick, slow = _pair(API.app.url_map)
        for rule in API.app.url_map.iter_rules():
            base = rule.rule.strip("/").split("/")
            for fill in ("", "abc"):
                segments = [fill if part.startswith("<") else part for part in base]
                for variant in (segments, segments + [""], segments[:-1], segments + ["x"]):
                    for method in (b"GET", b"PUT", b"PATCH", b"DELETE", b"POST", b"BREW"):
                        self.assertEqual(
                            quick.route(_request(variant, method)),
                            slow.route(_request(variant, method)),
                            (variant, method),
                        )

    def test_hot_routes_need_no_werkzeug(self) -> None:
        quick, _ = _pair(API.app.url_map)
        self.assertEqual(quick._quick_route("/skydns/services/abc"), "/skydns/services/{uuid}")
        self.assertEqual(quick._quick_route("/skydns/services"), "/skydns/services")
        self.assertIsNone(quick._quick_route("/skydns/services//"))

    def test_other_converters_fall_back(self) -> None:
        """A rule werkzeug matches in a way segments cannot say turns the
        table off, and werkzeug decides."""
        url_map = Map([Rule("/a/<path:rest>", endpoint="rest"), Rule("/a/b", endpoint="b")])
        quick, _ = _pair(url_map)
        self.assertIsNone(quick._by_length)
        self.assertEqual(quick.route(_request(["a", "x", "y"], b"GET")), "/a/{rest}")
        self.assertEqual(quick.route(_request(["zzz"], b"GET")), UNMATCHED_ROUTE)
