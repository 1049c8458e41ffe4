"""Table-first route matching gives exactly werkzeug's answer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from werkzeug.routing import Map, Rule

from skydns.http.api import API
from skydns.http.kleinbypass import FastRoutes, quick_match, segment_table

METHODS = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS", "BREW"]


def _outcome(url_map: Any, path: str, method: str) -> Any:
    """(endpoint, variables), or the routing exception's type."""
    adapter = url_map.bind("localhost", "", path_info=path, default_method=method,
                           url_scheme="http")  # fmt: skip
    try:
        rule, variables = adapter.match(return_rule=True)
    except Exception as e:  # NotFound, MethodNotAllowed, RequestRedirect
        return type(e)
    return rule.endpoint, dict(variables)


def _paths() -> list[str]:
    """Every API rule's path with variables empty or filled, with a slash
    more, a segment less or a segment more."""
    paths = []
    for rule in API.app.url_map.iter_rules():
        base = rule.rule.strip("/").split("/")
        for fill in ("", "abc", "a b"):
            segments = [fill if part.startswith("<") else part for part in base]
            for variant in (segments, segments + [""], segments[:-1], segments + ["x"]):
                paths.append("/" + "/".join(variant))
    return paths


class FastRoutesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.routes = FastRoutes(API.app)

    def test_agrees_with_werkzeug_around_every_rule(self) -> None:
        for path in _paths():
            for method in METHODS:
                self.assertEqual(
                    _outcome(self.routes.url_map, path, method),
                    _outcome(API.app.url_map, path, method),
                    (path, method),
                )

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(["skydns", "services", "cluster", "members", "health", "", "x", "%"]),
            max_size=5,
        ),  # fmt: skip
        st.sampled_from(METHODS),
    )
    def test_agrees_with_werkzeug_on_any_path(self, segments: list[str], method: str) -> None:
        path = "/" + "/".join(segments)
        self.assertEqual(
            _outcome(self.routes.url_map, path, method), _outcome(API.app.url_map, path, method)
        )

    def test_hot_routes_come_from_the_table(self) -> None:
        assert self.routes.table is not None
        for method, endpoint in (("PUT", "add_service"), ("PATCH", "patch_service"),
                                 ("GET", "get_service"), ("DELETE", "remove_service")):  # fmt: skip
            found = quick_match(self.routes.table, "/skydns/services/abc", method)
            assert found is not None
            self.assertEqual((found[0].endpoint, found[1]), (endpoint, {"uuid": "abc"}))

    def test_other_rules_turn_the_table_off(self) -> None:
        self.assertIsNone(segment_table(Map([Rule("/a/<path:rest>", endpoint="rest")])))
        self.assertIsNone(segment_table(Map([Rule("/a/<int:n>", endpoint="n")])))
        self.assertIsNone(segment_table(Map([Rule("/a", endpoint="a", defaults={"page": "1"})])))

    def test_two_patterns_leave_precedence_to_werkzeug(self) -> None:
        """A static and a variable rule that both fit: werkzeug prefers the
        static one, and the table does not guess."""
        url_map = Map([Rule("/a/<x>", endpoint="var"), Rule("/a/b", endpoint="static")])
        table = segment_table(url_map)
        assert table is not None
        self.assertIsNone(quick_match(table, "/a/b", "GET"))
        self.assertIsNotNone(quick_match(table, "/a/c", "GET"))

    def test_repeated_question_same_answer_per_table(self) -> None:
        """The metrics wrapper and Klein ask about each request in turn: the
        second answer is the first's, for that table only, and a caller
        changing its variables does not change the next caller's."""
        assert self.routes.table is not None
        first = quick_match(self.routes.table, "/skydns/services/abc", "PUT")
        assert first is not None
        first[1]["uuid"] = "changed"
        again = quick_match(self.routes.table, "/skydns/services/abc", "PUT")
        assert again is not None
        self.assertEqual((again[0].endpoint, again[1]), ("add_service", {"uuid": "abc"}))
        other = segment_table(Map([Rule("/skydns/services/<uuid>", endpoint="other")]))
        assert other is not None
        found = quick_match(other, "/skydns/services/abc", "PUT")
        assert found is not None
        self.assertEqual(found[0].endpoint, "other")
        self.assertIsNone(quick_match(self.routes.table, "/skydns/services/abc", "BREW"))
