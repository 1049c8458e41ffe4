"""docs/openapi.json describes the Klein app exactly: every route with its
methods, no route that does not exist, the JSON field names the API writes,
and (when openapi-spec-validator is installed) real answers validate against it."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from skydns.http.api import API
from skydns.metrics import route_template
from skydns.presentation import service_json
from skydns.registry import Instance
from tests.test_api import APITestCase, FakeMetrics, service
from tests.test_logging import _service

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "openapi.json")
METHODS = {"get", "put", "patch", "delete", "post", "head", "options"}


def load() -> dict[str, Any]:
    with open(DOC) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def app_routes() -> dict[str, set[str]]:
    """{template: methods} of the Klein app (HEAD, which werkzeug adds to
    every GET, left out)."""
    routes: dict[str, set[str]] = {}
    for rule in API.app.url_map.iter_rules():
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(route_template(rule.rule), set()).update(methods)
    return routes


class RouteCoverageTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.doc = load()

    def test_every_route_documented_and_no_other(self) -> None:
        """The documented paths and methods are exactly the app's routes."""
        documented = {
            path: {m for m in item if m in METHODS} for path, item in self.doc["paths"].items()
        }
        self.assertEqual(documented, app_routes())

    def test_operations_have_ids_and_responses(self) -> None:
        ids = []
        for item in self.doc["paths"].values():
            for method in METHODS & set(item):
                operation = item[method]
                ids.append(operation["operationId"])
                self.assertTrue(operation["responses"], operation["operationId"])
        self.assertEqual(len(ids), len(set(ids)))

    def test_status_codes_of_spec(self) -> None:
        """The status codes SPEC.md §2 lists are documented for each route."""
        paths = self.doc["paths"]
        expected = {
            ("/skydns/services/{uuid}", "put"): {"201", "400", "409", "401", "503"},
            ("/skydns/services/{uuid}", "get"): {"200", "404"},
            ("/skydns/services/{uuid}", "patch"): {"200", "400", "404"},
            ("/skydns/services/{uuid}", "delete"): {"200", "404"},
            ("/skydns/services/", "get"): {"200", "400"},
            ("/skydns/regions/", "get"): {"200"},
            ("/skydns/callbacks/{uuid}", "put"): {"201", "400", "404"},
            ("/ready", "get"): {"200", "503"},
        }
        for (path, method), codes in expected.items():
            self.assertLessEqual(codes, set(paths[path][method]["responses"]), (path, method))

    def test_open_endpoints_need_no_secret(self) -> None:
        """/health, /ready and /metrics are documented without security, as
        the API serves them."""
        for path in ["/health", "/ready", "/metrics"]:
            self.assertEqual(self.doc["paths"][path]["get"]["security"], [])
        # The secret, or (a server started without --secret) nothing.
        self.assertEqual(self.doc["security"], [{"secret": []}, {}])
        scheme = self.doc["components"]["securitySchemes"]["secret"]
        self.assertEqual((scheme["in"], scheme["name"]), ("header", "Authorization"))

    def test_service_fields(self) -> None:
        """The Service schema has exactly the fields service_json writes."""
        schema = self.doc["components"]["schemas"]["Service"]
        written = set(service_json(Instance(_service(), 10.0), 0.0))
        self.assertEqual(set(schema["properties"]), written)
        self.assertEqual(set(schema["required"]), written)


class ValidationTests(APITestCase):
    """Real answers of the API validate against the documented schemas."""

    def setUp(self) -> None:
        from openapi_spec_validator import validate  # in the test extra

        super().setUp()
        self.doc = load()
        validate(self.doc)
        self.metrics: Any = FakeMetrics()
        self.build()

    def check(self, path: str, method: str, response: Any) -> None:
        from openapi_schema_validator import OAS30Validator

        documented = self.doc["paths"][path][method]["responses"][str(response.code)]
        if "$ref" in documented:
            documented = self.doc["components"]["responses"][documented["$ref"].split("/")[-1]]
        schema = documented["content"]["application/json"]["schema"]
        resolver_doc = {"components": self.doc["components"], **schema}
        OAS30Validator(resolver_doc).validate(response.json())

    def test_answers_match_schemas(self) -> None:
        put = self.call("PUT", "/skydns/services/1001", service(Region="east"))
        self.check("/skydns/services/{uuid}", "put", put)
        self.check("/skydns/services/{uuid}", "get", self.call("GET", "/skydns/services/1001"))
        self.check("/skydns/services/{uuid}", "get", self.call("GET", "/skydns/services/x"))
        self.check("/skydns/services/{uuid}", "put",
                   self.call("PUT", "/skydns/services/1001", service()))  # fmt: skip
        self.check("/skydns/services/{uuid}", "put",
                   self.call("PUT", "/skydns/services/1002", service(Port=0)))  # fmt: skip
        self.check("/skydns/services/{uuid}", "patch",
                   self.call("PATCH", "/skydns/services/1001", {"TTL": 5}))  # fmt: skip
        self.check("/skydns/services/", "get", self.call("GET", "/skydns/services/?query=rails"))
        self.check("/skydns/regions/", "get", self.call("GET", "/skydns/regions/"))
        self.check("/skydns/environments/", "get", self.call("GET", "/skydns/environments/"))
        callback = {"Reply": "10.0.0.9", "Port": 5441, "Name": "rails"}
        self.check("/skydns/callbacks/{uuid}", "put",
                   self.call("PUT", "/skydns/callbacks/cb1", callback))  # fmt: skip
        self.check("/skydns/cluster", "get", self.call("GET", "/skydns/cluster"))
        self.check("/health", "get", self.call("GET", "/health"))
        self.check("/ready", "get", self.call("GET", "/ready"))
        self.cluster.ready = False
        self.check("/ready", "get", self.call("GET", "/ready"))
        self.check("/skydns/services/{uuid}", "delete",
                   self.call("DELETE", "/skydns/services/1001"))  # fmt: skip
