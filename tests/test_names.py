"""Tests for skydns.names: validation, label encoding and the name grammar."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from skydns.bodies import ValidationError, parse_callback, parse_service, parse_ttl
from skydns.commands import Register, encode
from skydns.names import DEFAULT_TTL, POSITIONS, Callback, Service, encode_label
from skydns.patterns import (
    ORDERS,
    SKYDNS1_ORDER,
    Pattern,
    PatternError,
    parse_pattern,
    parse_query,
)
from skydns.presentation import service_json
from skydns.registry import Instance

LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
labels = st.text(alphabet=LABEL_CHARS, min_size=1, max_size=63)
lower_labels = labels.map(str.lower).filter(lambda s: s not in ("any",))

#: Deterministic enough for CI: no per-example deadline, no speed health check.
steady = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD = {
    "Name": "rails",
    "Version": "1.0.1",
    "Environment": "production",
    "Region": "east",
    "Host": "web1.example.com",
    "Port": 8080,
    "TTL": 30,
}


def body(**fields: Any) -> bytes:
    data = dict(GOOD)
    for key, value in fields.items():
        if value is _MISSING:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


_MISSING = object()


def service(**overrides: Any) -> Service:
    values: dict[str, Any] = {
        "uuid": "u1",
        "name": "rails",
        "environment": "production",
        "region": "east",
        "version": "1.0.1",
        "host": "web1.example.com",
        "port": 8080,
        "ttl": 30,
    }
    values.update(overrides)
    return Service(**values)


class EncodeLabelTests(SynchronousTestCase):
    def test_dots_become_hyphens(self) -> None:
        """Dots in Version and Host are written as '-' (SPEC §1)."""
        self.assertEqual(encode_label("1.0.1"), "1-0-1")
        self.assertEqual(encode_label("Web1.Example.com"), "web1-example-com")

    def test_ipv6_colons(self) -> None:
        """The colons of an IPv6 literal are written as '-'."""
        self.assertEqual(encode_label("2001:DB8::1"), "2001-db8--1")

    @steady
    @given(st.text(alphabet=LABEL_CHARS + ".:", max_size=80))
    def test_encoded_is_one_label(self, value: str) -> None:
        """The encoding keeps the length, has no dots and is lower case."""
        encoded = encode_label(value)
        self.assertEqual(len(encoded), len(value))
        self.assertNotIn(".", encoded)
        self.assertEqual(encoded, encoded.lower())


class ParseServiceTests(SynchronousTestCase):
    def test_valid(self) -> None:
        """A full SkyDNS 1 body gives the Service with values as sent."""
        s = parse_service("1001", body())
        self.assertEqual(s, service(uuid="1001"))
        self.assertEqual(
            s.labels(), ("1001", "web1-example-com", "1-0-1", "east", "rails", "production")
        )

    def test_keys_case_insensitive_unknown_ignored(self) -> None:
        """Keys match case-insensitively; unknown keys are ignored."""
        raw = json.dumps(
            {"name": "Rails", "HOST": "10.0.0.1", "port": 53, "ttl": 5, "noexpire": True,
             "Callback": {}, "whatever": [1]}
        ).encode()
        s = parse_service("ABC", raw)
        self.assertEqual((s.name, s.host, s.port, s.ttl, s.no_expire),
                         ("Rails", "10.0.0.1", 53, 5, True))
        self.assertEqual(s.labels()[0], "abc")
        self.assertEqual(s.labels()[4], "rails")

    def test_defaults(self) -> None:
        """Only Host and Port are required; TTL defaults, others empty/None."""
        s = parse_service("u", b'{"Host": "h", "Port": 1}')
        self.assertEqual(s, Service("u", "", "", "", "", "h", 1, DEFAULT_TTL))

    def test_nulls_are_absent(self) -> None:
        """A JSON null counts as an absent optional field."""
        s = parse_service("u", body(Priority=None, Weight=None, NoExpire=None, Name=None))
        self.assertEqual((s.priority, s.weight, s.no_expire, s.name), (None, None, False, ""))

    def test_priority_weight(self) -> None:
        s = parse_service("u", body(Priority=0, Weight=65535))
        self.assertEqual((s.priority, s.weight), (0, 65535))

    def test_trailing_dot_host(self) -> None:
        """A fully qualified host name loses its trailing dot."""
        self.assertEqual(parse_service("u", body(Host="a.example.")).host, "a.example")

    def test_ip_hosts(self) -> None:
        for host in ("10.1.2.3", "::1", "2001:db8::1", "fe80::1:2"):
            self.assertEqual(parse_service("u", body(Host=host)).host, host)

    def assertField(self, field: str, raw: bytes, uuid: str = "u") -> None:
        err = self.assertRaises(ValidationError, parse_service, uuid, raw)
        self.assertEqual(err.field, field)
        self.assertIn(field, str(err))

    def test_required(self) -> None:
        """Missing or empty Host, missing or zero Port: 400 naming the field."""
        self.assertField("Host", body(Host=_MISSING))
        self.assertField("Host", body(Host=""))
        self.assertField("Port", body(Port=_MISSING))
        self.assertField("Port", body(Port=0))

    def test_ranges(self) -> None:
        self.assertField("Port", body(Port=65536))
        self.assertField("Port", body(Port=-1))
        self.assertField("TTL", body(TTL=0))
        self.assertField("TTL", body(TTL=-5))
        self.assertField("TTL", body(TTL=2**31))
        self.assertField("Priority", body(Priority=-1))
        self.assertField("Weight", body(Weight=65536))

    def test_wrong_types(self) -> None:
        """Strings, floats and booleans where integers are due are refused."""
        self.assertField("Port", body(Port="abc"))
        self.assertField("Port", body(Port="8080"))
        self.assertField("Port", body(Port=80.5))
        self.assertField("Port", body(Port=80.0))
        self.assertField("Port", body(Port=True))
        self.assertField("TTL", body(TTL=[1]))
        self.assertField("Priority", body(Priority=False))
        self.assertField("NoExpire", body(NoExpire=1))
        self.assertField("NoExpire", body(NoExpire="true"))
        self.assertField("Name", body(Name=5))
        self.assertField("Host", body(Host={"a": 1}))

    def test_labels(self) -> None:
        """Name, Environment, Region, UUID must each be one DNS label."""
        self.assertField("Name", body(Name="a.b"))
        self.assertField("Name", body(Name="x" * 64))
        self.assertField("Environment", body(Environment="prod env"))
        self.assertField("Region", body(Region="*"))
        self.assertField("Version", body(Version="1.0+b"))
        self.assertField("Version", body(Version="1." * 32))
        self.assertField("Host", body(Host="a..b"))
        self.assertField("Host", body(Host="-" + "a" * 63))
        self.assertField("Host", body(Host="a" * 40 + "." + "b" * 30))
        self.assertField("Host", body(Host="fe80::1%eth0"))
        self.assertField("UUID", body(), uuid="a.b")
        self.assertField("UUID", body(), uuid="")

    def test_not_an_object(self) -> None:
        """A body that is not a JSON object is refused as "body"."""
        for raw in (b"", b"Name=a&Host=b", b"[1, 2]", b'"x"', b"\xff\xfe",
                    b'{"Port": NaN, "Host": "h"}', b"{"):
            self.assertField("body", raw)

    @steady
    @given(st.dictionaries(
        st.sampled_from(["Host", "Port", "TTL", "Name", "Priority", "NoExpire", "Version"]),
        st.one_of(st.none(), st.booleans(), st.integers(-10, 70000),
                  st.floats(allow_nan=False, allow_infinity=False),
                  st.text(max_size=70), st.lists(st.integers(), max_size=2)),
    ))
    def test_fuzz_valid_or_named(self, data: dict[str, Any]) -> None:
        """Any JSON object is either a valid Service or a ValidationError naming
        a field of the body; a valid one has in-range values and short labels."""
        raw = json.dumps(data).encode()
        try:
            s = parse_service("u", raw)
        except ValidationError as e:
            self.assertIn(e.field, set(data) | {"Host", "Port"})
            return
        self.assertTrue(1 <= s.port <= 65535)
        self.assertGreaterEqual(s.ttl, 1)
        for label in s.labels():
            self.assertLessEqual(len(label), 63)
            self.assertNotIn(".", label)

    @steady
    @given(labels, labels, labels, st.text(alphabet=LABEL_CHARS + ".", min_size=1,
                                             max_size=63).filter(lambda v: ".." not in v))
    def test_label_round_trip(self, name: str, env: str, region: str, version: str) -> None:
        """A valid registration's labels are its fields, lowered and encoded."""
        s = parse_service("u", body(Name=name, Environment=env, Region=region,
                                    Version=version))
        self.assertEqual(s.labels()[2:],
                         (encode_label(version), region.lower(), name.lower(), env.lower()))


class ServiceDictTests(SynchronousTestCase):
    @steady
    @given(
        st.builds(
            Service,
            uuid=labels, name=st.just("") | labels, environment=labels, region=labels,
            version=labels, host=labels, port=st.integers(1, 65535),
            ttl=st.integers(1, 2**31 - 1), priority=st.none() | st.integers(0, 65535),
            weight=st.none() | st.integers(0, 65535), no_expire=st.booleans(),
        )
    )
    def test_round_trip(self, s: Service) -> None:
        """to_dict/from_dict round-trip, through JSON too."""
        self.assertEqual(Service.from_dict(json.loads(json.dumps(s.to_dict()))), s)

    @steady
    @given(
        texts=st.lists(st.text(max_size=12), min_size=6, max_size=6),
        numbers=st.tuples(
            st.integers(-5, 70000) | st.booleans(), st.integers(0, 2**40),
            st.none() | st.integers(0, 65535) | st.floats(allow_nan=False),
            st.none() | st.integers(0, 65535),
        ),
        no_expire=st.booleans(),
        now=st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10**10),
    )  # fmt: skip
    def test_json_is_the_general_encoders(
        self, texts: list[str], numbers: tuple[Any, int, Any, Any], no_expire: bool, now: Any
    ) -> None:  # fmt: skip
        """A Register as the log stores it is byte for byte what the sorted
        compact JSON encoder makes of the dict form, whatever the text
        (non-ASCII, quotes, control characters) and numbers."""
        uuid, name, environment, region, version, host = texts
        port, ttl, priority, weight = numbers
        svc = Service(uuid=uuid, name=name, environment=environment, region=region,
                      version=version, host=host, port=port, ttl=ttl, priority=priority,
                      weight=weight, no_expire=no_expire)  # fmt: skip
        general = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
        body = {"op": "register", "service": svc.to_dict(), "now": now}
        self.assertEqual(encode(Register(svc, now)), general.encode(body).encode("ascii"))

    def test_callback_round_trip(self) -> None:
        cb = Callback("c", "rails", "", "east", "1.0", "", "10.0.0.9", 9000)
        self.assertEqual(Callback.from_dict(json.loads(json.dumps(cb.to_dict()))), cb)


class PatternTests(SynchronousTestCase):
    def test_padding(self) -> None:
        """Missing labels on the left are wildcards."""
        self.assertEqual(parse_pattern(["rails", "production"]),
                         Pattern(name="rails", environment="production"))
        self.assertEqual(parse_pattern([]), Pattern())

    def test_full(self) -> None:
        self.assertEqual(
            parse_pattern(["U1", "web1-example-com", "1-0-1", "East", "rails", "production"]),
            Pattern("u1", "web1-example-com", "1-0-1", "east", "rails", "production"),
        )

    def test_wildcards(self) -> None:
        """'*' and 'any' (any case) are wildcards in any position."""
        self.assertEqual(parse_pattern(["*", "ANY", "rails", "*"]),
                         Pattern(name="rails"))
        self.assertEqual(parse_pattern(["east", "Any", "production"]),
                         Pattern(region="east", environment="production"))

    def test_too_many(self) -> None:
        """More than six labels before the domain is a PatternError."""
        self.assertRaises(PatternError, parse_pattern, ["a"] * 7)

    def test_bad_labels(self) -> None:
        self.assertRaises(PatternError, parse_pattern, ["a", ""])
        self.assertRaises(PatternError, parse_pattern, ["a" * 64])

    @steady
    @given(st.lists(st.one_of(lower_labels, st.sampled_from(["*", "any", "ANY"])),
                    max_size=6))
    def test_pattern_positions(self, parts: list[str]) -> None:
        """The last label is the environment, and so on leftwards."""
        pattern = parse_pattern(parts)
        values = pattern.labels()
        self.assertEqual(len(values), len(POSITIONS))
        padded = [None] * (6 - len(parts)) + [
            None if p.lower() in ("*", "any") else p for p in parts
        ]
        self.assertEqual(list(values), padded)

    def test_query_with_and_without_domain(self) -> None:
        """?query= accepts the pattern with or without the domain and trailing dot."""
        expected = Pattern(region="east", name="rails", environment="production")
        for q in ("east.rails.production", "east.rails.production.skydns.local",
                  "East.Rails.Production.SkyDNS.local.", "east.rails.production."):
            self.assertEqual(parse_query(q, "skydns.local"), expected)
        self.assertEqual(parse_query("", "skydns.local"), Pattern())
        self.assertEqual(parse_query("skydns.local.", "skydns.local"), Pattern())
        self.assertEqual(parse_query("*", "skydns.local."), Pattern())

    def test_skydns1_order(self) -> None:
        """In SkyDNS 1's order the region is left of the version; the seed's
        the other way round; every other position is the same."""
        self.assertEqual(parse_pattern(["east", "1-0-0", "testservice", "production"],
                                       SKYDNS1_ORDER),
                         Pattern(region="east", version="1-0-0", name="testservice",
                                 environment="production"))  # fmt: skip
        self.assertEqual(parse_pattern(["1-0-0", "testservice", "production"], SKYDNS1_ORDER),
                         Pattern(version="1-0-0", name="testservice", environment="production"))
        self.assertEqual(parse_pattern(["1-0-0", "testservice", "production"]),
                         Pattern(region="1-0-0", name="testservice", environment="production"))
        self.assertEqual(parse_query("east.*.*.production", "skydns.local", ORDERS["skydns1"]),
                         Pattern(region="east", environment="production"))
        self.assertEqual(ORDERS["seed"], POSITIONS)

    def test_rfc2782_names(self) -> None:
        """_<name>._<proto>.<rest> is <rest> restricted to that Name and
        Protocol, in either order; a wildcard service label restricts only
        the protocol; a contradicting Name or a third protocol is no pattern."""
        self.assertEqual(parse_pattern(["_Rails", "_TCP", "production"]),
                         Pattern(name="rails", environment="production", protocol="tcp"))
        self.assertEqual(parse_pattern(["_rails", "_udp", "east", "*", "*", "production"],
                                       SKYDNS1_ORDER),
                         Pattern(region="east", name="rails", environment="production",
                                 protocol="udp"))  # fmt: skip
        self.assertEqual(parse_pattern(["_rails", "_tcp", "rails", "production"]),
                         Pattern(name="rails", environment="production", protocol="tcp"))
        self.assertEqual(parse_pattern(["_*", "_tcp"]), Pattern(protocol="tcp"))
        self.assertEqual(parse_pattern(["_rails", "_tcp", "a", "b", "c", "d", "rails", "f"]).uuid,
                         "a")  # fmt: skip
        self.assertRaises(PatternError, parse_pattern, ["_rails", "_tcp", "web", "production"])
        self.assertEqual(parse_pattern(["_rails", "_sctp", "production"]),
                         Pattern(name="_sctp", region="_rails", environment="production"))
        self.assertEqual(parse_query("_rails._tcp.production.skydns.local", "skydns.local"),
                         Pattern(name="rails", environment="production", protocol="tcp"))
        udp = service(protocol="udp")
        self.assertTrue(Pattern(name="rails", protocol="udp").matches(udp))
        self.assertFalse(Pattern(name="rails", protocol="tcp").matches(udp))

    def test_query_errors(self) -> None:
        self.assertRaises(PatternError, parse_query, "a.b.c.d.e.f.g", "skydns.local")
        self.assertRaises(PatternError, parse_query, "a..b", "skydns.local")

    def test_matches(self) -> None:
        """A pattern matches on labels: encoded, case-insensitive."""
        s = service(host="Web1.Example.com", region="East")
        self.assertTrue(parse_query("east.rails.production", "d").matches(s))
        self.assertTrue(parse_query("web1-example-com.1-0-1.any.rails.production", "d")
                        .matches(s))
        self.assertTrue(parse_query("u1.*.*.*.*.*", "d").matches(s))
        self.assertFalse(parse_query("west.rails.production", "d").matches(s))
        self.assertFalse(parse_query("1-0-2.east.rails.production", "d").matches(s))
        self.assertFalse(parse_query("rails.staging", "d").matches(s))

    def test_without_region(self) -> None:
        p = Pattern(version="1", region="east", name="n", environment="e")
        self.assertEqual(p.without_region(), Pattern(version="1", name="n", environment="e"))

    @steady
    @given(labels, labels, labels, labels)
    def test_own_name_matches(self, uuid: str, region: str, name: str, env: str) -> None:
        """A service's full name (and every left-truncation) matches it."""
        s = service(uuid=uuid, region=region, name=name, environment=env)
        full = list(s.labels())
        for start in range(len(full)):
            self.assertTrue(parse_pattern(full[start:]).matches(s))


class CallbackTests(SynchronousTestCase):
    def test_parse(self) -> None:
        cb = parse_callback("cb1", json.dumps({
            "name": "rails", "Environment": "production", "reply": "10.0.0.9",
            "port": 9000, "Version": "1.0.1"}).encode())
        self.assertEqual(cb, Callback("cb1", "rails", "production", "", "1.0.1", "",
                                      "10.0.0.9", 9000))

    def test_required(self) -> None:
        for raw, field in ((b'{"Port": 1}', "Reply"), (b'{"Reply": "h"}', "Port"),
                           (b'{"Reply": "h", "Port": 0}', "Port"),
                           (b'{"Reply": "a b", "Port": 1}', "Reply"),
                           (b'{"Reply": "h", "Port": 1, "Name": "a.b"}', "Name"),
                           (b"[]", "body")):
            err = self.assertRaises(ValidationError, parse_callback, "c", raw)
            self.assertEqual(err.field, field)

    def test_matches(self) -> None:
        """Empty, '*' and 'any' match anything; other fields compare as labels."""
        s = service(host="Web1.example.com", version="1.0.1")
        self.assertTrue(Callback("c", "", "", "", "", "", "r", 1).matches(s))
        self.assertTrue(Callback("c", "RAILS", "any", "*", "1.0.1", "web1.example.com",
                                 "r", 1).matches(s))
        self.assertFalse(Callback("c", "rails", "staging", "", "", "", "r", 1).matches(s))
        self.assertFalse(Callback("c", "", "", "", "2.0", "", "r", 1).matches(s))
        self.assertFalse(Callback("c", "", "", "west", "", "", "r", 1).matches(s))


class ParseTTLTests(SynchronousTestCase):
    def test_ttl(self) -> None:
        self.assertEqual(parse_ttl(b'{"ttl": 20}'), 20)
        for raw in (b"{}", b'{"TTL": 0}', b'{"TTL": "5"}', b'{"TTL": 1.5}', b'{"TTL": true}'):
            self.assertEqual(self.assertRaises(ValidationError, parse_ttl, raw).field, "TTL")
        self.assertEqual(self.assertRaises(ValidationError, parse_ttl, b"5").field, "body")


class ServiceJSONTests(SynchronousTestCase):
    def test_shape(self) -> None:
        """GET shows the fields SkyDNS 1 clients read, TTL = whole seconds left."""
        inst = Instance(service(priority=5), expires=1000.0)
        self.assertEqual(service_json(inst, 969.5), {
            "UUID": "u1", "Name": "rails", "Version": "1.0.1", "Environment": "production",
            "Region": "east", "Host": "web1.example.com", "Port": 8080, "TTL": 30,
            "Priority": 5, "Weight": None, "NoExpire": False, "Protocol": "tcp", "Drain": False,
            "Lease": None, "Expires": "1970-01-01T00:16:40Z",
        })
        self.assertEqual(service_json(inst, 970.5)["TTL"], 29)
        self.assertEqual(service_json(inst, 2000)["TTL"], 0)

    def test_no_expire(self) -> None:
        inst = Instance(service(no_expire=True, ttl=42), expires=0.0)
        data = service_json(inst, 10**9)
        self.assertEqual((data["TTL"], data["NoExpire"], data["Expires"]), (42, True, None))


class HostLabelTests(SynchronousTestCase):
    """A Host whose labels start or end with '-' is not a host name (RFC 1123)."""

    def test_hyphen_at_either_end_of_a_label_is_refused(self) -> None:
        for host in ("-bad.example", "bad-.example", "web.-x"):
            with self.assertRaises(ValidationError) as caught:
                parse_service("u1", json.dumps({"Host": host, "Port": 80}).encode())
            self.assertEqual(caught.exception.field, "Host")
        self.assertEqual(
            parse_service("u1", b'{"Host": "ok-host.example", "Port": 80}').host,
            "ok-host.example",
        )
