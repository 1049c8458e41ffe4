"""The HTTP API fuzzed from its OpenAPI description (docs/openapi.json).

Hypothesis builds requests for every documented operation: path and query
parameters and JSON bodies from the document's schemas (through
hypothesis-jsonschema), plausible bodies that often succeed, and hostile
ones (arbitrary bytes, arbitrary JSON, oversized bodies, odd methods,
paths and headers).  Each request goes to the real Klein app through
StubTreq over a LocalCluster and a real Registry.  Whatever comes in:

- no 5xx, except 503 when the cluster has no leader;
- the answer is a JSON body, with a status the document lists for that
  operation (or 404/405 for paths and methods it does not list);
- a 4xx (or 503) leaves the registry exactly as it was;
- with a secret, a request without it gets 401 under ``/skydns/``;
- nothing is logged as an unhandled error.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from typing import Any, Optional

from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from skydns.cluster import NotLeader
from skydns.commands import Command
from skydns.http.api import make_api
from skydns.http.limits import MAX_BODY
from skydns.http.watching import MAX_WAIT
from skydns.registry import Applied, Registry
from skydns.testing import LocalCluster

OPENAPI = os.path.join(os.path.dirname(__file__), "..", "docs", "openapi.json")
BASE = "http://127.0.0.1:8080"
START = 1_700_000_000.0
SECRET = "fuzz-secret"

with open(OPENAPI) as f:
    DOC: dict[str, Any] = json.load(f)

METHODS = ["GET", "PUT", "PATCH", "DELETE", "POST", "HEAD", "OPTIONS"]


def _resolve(node: Any) -> Any:
    """``node`` with every ``#/components/...`` reference inlined."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = DOC
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target)
        return {k: _resolve(v) for k, v in node.items() if k not in ("example", "examples")}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in DOC["paths"].items():
        if path.startswith("/skydns/watch"):
            continue  # a stream that does not end: tests/test_watch_http.py
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation = dict(operation)
            operation["parameters"] = shared + operation.get("parameters", [])
            found.append((path, method.upper(), _resolve(operation)))
    return found


OPERATIONS = _operations()

label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
plausible_service = st.fixed_dictionaries(
    {"Host": st.sampled_from(["10.0.0.1", "web.example.com", "::1", "", "a..b"]),
     "Port": st.one_of(st.integers(1, 65535), st.integers())},
    optional={"Name": label, "Environment": label, "Region": label, "Version": label,
              "TTL": st.one_of(st.integers(1, 3600), st.integers()),
              "Priority": st.integers(-1, 70000), "Reply": st.just("10.0.0.2"),
              "NoExpire": st.one_of(st.booleans(), st.just("yes"))},
)  # fmt: skip
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


class Big(bytes):
    """An oversized body that shows itself briefly in a falsifying example."""

    def __repr__(self) -> str:
        return f"Big({bytes(self[:20])!r}... {len(self)} bytes)"


def _encoded(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def _body(operation: dict[str, Any]) -> st.SearchStrategy[Optional[bytes]]:
    hostile: list[st.SearchStrategy[Optional[bytes]]] = [
        st.none(),
        st.binary(max_size=200),
        any_json.map(_encoded),
        st.just(Big(b"{" * (MAX_BODY + 1))),
        st.just(Big(b'{"Host": "10.0.0.1", "Port": 80, "pad": "' + b"x" * MAX_BODY + b'"}')),
    ]
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return st.one_of(hostile)
    schema = content["schema"]
    return st.one_of(
        from_schema(schema).map(_encoded),
        plausible_service.map(_encoded),
        st.builds(lambda ttl: _encoded({"TTL": ttl}), st.integers(-1, 2**31)),
        *hostile,
    )


def _parameter(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    # "seed" is registered before every example: renew, read, remove it.
    return st.one_of(from_schema(schema), label, st.just("seed"), st.text(max_size=80))


@st.composite
def requests(draw: Any) -> tuple[str, str, str, dict[str, list[str]], Optional[bytes], int]:
    """(method, url, the documented path or "", headers, body, operation number)."""
    writes = [i for i, op in enumerate(OPERATIONS) if op[1] != "GET"]
    number = draw(st.integers(0, len(OPERATIONS) - 1) | st.sampled_from(writes))
    path, method, operation = OPERATIONS[number]
    url_path = path
    query: dict[str, str] = {}
    documented = path
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            value = draw(_parameter(parameter["schema"]))
            pattern = parameter["schema"].get("pattern")
            if pattern and not re.search(pattern, value):
                documented = ""  # the document promises nothing for this path
            placeholder = "{" + parameter["name"] + "}"
            url_path = url_path.replace(placeholder, urllib.parse.quote(value, safe=""))
        elif parameter["in"] == "query" and draw(st.booleans()):
            query[parameter["name"]] = draw(_parameter(parameter["schema"]))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(METHODS))
        documented = ""
    if draw(st.integers(0, 19)) == 0:
        url_path = draw(st.sampled_from(["/skydns/", "/skydns", "/nope", "/skydns/services/a/b",
                                         "/skydns/../health", "//skydns/services/x"]))  # fmt: skip
        documented = ""
    headers: dict[str, list[str]] = {}
    auth = draw(st.sampled_from([None, SECRET, "Bearer " + SECRET, "Bearer wrong", "",
                                 SECRET + " "]))  # fmt: skip
    if auth is not None:
        headers["Authorization"] = [auth]
    if draw(st.booleans()):
        headers["Content-Type"] = [draw(st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded",
             "multipart/form-data; boundary=x"]))]  # fmt: skip
    body = draw(_body(operation))
    url = BASE + url_path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return method, url, documented, headers, body, number


class LeaderlessCluster(LocalCluster):
    """No leader: every write and consistent read fails with NotLeader."""

    def propose(self, command: Command) -> Deferred[Applied]:
        return fail(NotLeader("n2"))

    def read_barrier(self) -> Deferred[None]:
        return fail(NotLeader("n2"))

    def renew(self, renewal: Any) -> Deferred[Optional[int]]:
        return fail(NotLeader("n2"))


class APIFuzzTests(SynchronousTestCase):
    def check(self, batch: Any, secret: Optional[str], leaderless: bool = False) -> None:
        """Send each request of ``batch`` in turn to one fresh node."""
        clock = Clock()
        clock.advance(START)
        registry = Registry()
        cluster = (LeaderlessCluster if leaderless else LocalCluster)(registry, clock=clock)
        api = make_api(cluster, clock, "skydns.local", secret=secret)
        treq: Any = StubTreq(api.resource())
        # Something to lose: one registered service before the request.
        seed = treq.request("PUT", BASE + "/skydns/services/seed",
                            data=_encoded({"Host": "10.0.0.9", "Port": 1}),
                            headers={"Authorization": [SECRET]})  # fmt: skip
        treq.flush()
        if not leaderless:
            self.assertEqual(self.successResultOf(seed).code, 201)
        for request in batch:
            self.one(treq, clock, registry, request, secret, leaderless)
            clock.advance(1)

    def one(self, treq: Any, clock: Clock, registry: Registry, request: Any,
            secret: Optional[str], leaderless: bool) -> None:  # fmt: skip
        method, url, documented, headers, body, number = request
        operation = OPERATIONS[number][2]
        before = registry.snapshot()

        # What a failure message shows: no operation, at most 200 bytes of body.
        request = (method, url, headers, None if body is None else body[:200])
        d = treq.request(method, url, data=body, headers=headers)
        answered: list[object] = []
        d.addBoth(lambda result: answered.append(result) or result)
        treq.flush()
        if not answered and "index=" in url:
            # A long poll at the current index holds, as documented, until
            # its wait (jittered by at most a sixteenth) runs out.
            clock.advance(MAX_WAIT * 17 / 16 + 1)
            treq.flush()
        response = self.successResultOf(d)
        content = treq.content(response)
        treq.flush()
        raw = self.successResultOf(content)
        code = response.code
        event(f"{method} {code}")  # --hypothesis-show-statistics shows the spread

        allowed_5xx = {503} if leaderless else set()
        if "/skydns/cluster/members" in url:
            # A LocalCluster cannot change membership: the API says 501 (not
            # in docs/openapi.json; a Raft node answers as documented).
            allowed_5xx.add(501)
        self.assertFalse(code >= 500 and code not in allowed_5xx, (code, raw, request))
        multipart = "multipart/" in headers.get("Content-Type", [""])[0]
        # twisted.web parses a POSTed multipart body before any resource sees
        # it, and answers a malformed one with a bare 400 itself.
        bare_400 = method == "POST" and multipart and bool(body) and code == 400 and raw == b""
        if not bare_400 and method != "HEAD":
            json.loads(raw)  # every answer is JSON (no /metrics without metrics)
        if documented and not leaderless:
            listed = {int(c) for c in operation["responses"]} | (allowed_5xx - {503})
            self.assertIn(code, listed, (code, raw, request))
        if code >= 400:
            self.assertEqual(registry.snapshot(), before, (code, raw, request))
        path = urllib.parse.urlsplit(url).path
        # Surrounding whitespace is not part of a header value (RFC 9110 §5.5).
        given = (headers.get("Authorization", [None])[0] or "").strip()
        authorized = given in (SECRET, "Bearer " + SECRET)
        if secret and path.startswith("/skydns/") and not authorized and not bare_400:
            self.assertEqual(code, 401, (raw, request))
        self.assertEqual(self.flushLoggedErrors(), [])

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(requests(), min_size=1, max_size=4))
    def test_no_secret(self, batch: Any) -> None:
        self.check(batch, secret=None)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(requests(), min_size=1, max_size=4))
    def test_with_secret(self, batch: Any) -> None:
        self.check(batch, secret=SECRET)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(requests(), min_size=1, max_size=4))
    # A long poll at the index it already has (nothing was written) holds.
    @example(batch=[("GET", BASE + "/skydns/services/?index=0", "", {}, None, 4)])
    def test_without_a_leader(self, batch: Any) -> None:
        self.check(batch, secret=None, leaderless=True)


def _schema(name: str) -> dict[str, Any]:
    resolved: dict[str, Any] = _resolve(DOC["components"]["schemas"][name])
    return resolved


UUIDS = from_schema(_resolve(DOC["paths"]["/skydns/services/{uuid}"]["parameters"][0]["schema"]))


#: Every property name the document spells, in its spelling and lower-cased.
DOCUMENTED = {name for schema in DOC["components"]["schemas"].values()
              for name in schema.get("properties", {})}  # fmt: skip
DOCUMENTED_LOWER = {name.lower() for name in DOCUMENTED}


class SpecAcceptanceTests(SynchronousTestCase):
    """What the document says is valid, the server accepts (schemathesis'
    "positive data acceptance"): a body valid for the schema never gets 400."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.registry = Registry()
        cluster = LocalCluster(self.registry, clock=self.clock)
        self.treq: Any = StubTreq(make_api(cluster, self.clock, "skydns.local").resource())

    def call(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        # Keys match case-insensitively: an extra key that is another
        # spelling of a documented one carries its value, which JSON Schema
        # (OpenAPI 3.0) cannot constrain by spelling; leave such bodies out
        # (two spellings in one body, or one the document does not spell so).
        keys = [key.lower() for key in body]
        assume(len(keys) == len(set(keys)))
        assume(all(key in DOCUMENTED or key.lower() not in DOCUMENTED_LOWER for key in body))
        d = self.treq.request(method, BASE + path, data=_encoded(body))
        self.treq.flush()
        response = self.successResultOf(d)
        raw = self.successResultOf(response.content())
        self.treq.flush()
        return response.code, raw

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(UUIDS, from_schema(_schema("ServiceRegistration")))
    def test_valid_registrations_are_accepted(self, uuid: str, body: Any) -> None:
        code, raw = self.call("PUT", "/skydns/services/" + uuid, body)
        # No lease was granted: one named is not found (404), as documented.
        self.assertIn(code, (201, 409, 404) if body.get("Lease") else (201, 409), (raw, body))

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(UUIDS, from_schema(_schema("CallbackRegistration")))
    def test_valid_callbacks_are_accepted(self, uuid: str, body: Any) -> None:
        code, raw = self.call("PUT", "/skydns/callbacks/" + uuid, body)
        self.assertIn(code, (201, 404), (raw, body))

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(UUIDS, from_schema(_schema("Renewal")))
    def test_valid_patches_are_accepted(self, uuid: str, body: Any) -> None:
        code, raw = self.call("PATCH", "/skydns/services/" + uuid, body)
        self.assertIn(code, (200, 404), (raw, body))
