"""SkyDNS 1's own tests, black-box: its ``server/server_test.go`` cases and
its README's examples, sent over real HTTP and DNS to a node started with
``--names skydns1`` (SkyDNS 1's label order), as SkyDNS 1's clients send
them (the Go client's bodies: the whole ``msg.Service`` struct, no
Content-Type, the raw secret in ``Authorization``).

Where this SkyDNS answers differently on purpose, the test says so and
checks what it answers instead; docs/compat.md lists every difference.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, ClassVar

import dns.message
from twisted.names import dns as tdns
from twisted.trial.unittest import SynchronousTestCase

from tests.dns_fakes import ThreadedUpstream, answering
from tests.e2e.harness import SkyDNSProcess, callback_receiver, dns_query, http

BOUND = 10.0


def go_body(uuid: str = "", **fields: Any) -> bytes:
    """``json.Marshal(msg.Service{...})`` as SkyDNS 1's tests and Go client
    send it: every field, zero values included, in the struct's order."""
    service = {"UUID": uuid, "Name": "", "Version": "", "Environment": "", "Region": "",
               "Host": "", "Port": 0, "TTL": 0, "Expires": "0001-01-01T00:00:00Z",
               "NoExpire": False}  # fmt: skip
    service.update(fields)
    return json.dumps(service, separators=(",", ":")).encode()


#: server_test.go's ``m``: the instance most of its API tests register.
TEST_SERVICE = {"Name": "TestService", "Version": "1.0.0", "Region": "Test",
                "Host": "localhost", "Environment": "Production", "Port": 9000, "TTL": 4}

#: server_test.go's ``services`` fixture: (UUID, Name, Version, Region, Host,
#: Environment, Port, TTL).
FIXTURE = [
    ("100", "TestService", "1.0.0", "Region1", "server1", "Development", 9000, 30),
    ("101", "TestService", "1.0.1", "Region1", "server2", "Production", 9001, 31),
    ("102", "OtherService", "1.0.0", "Region2", "server3", "Production", 9002, 32),
    ("103", "TestService", "1.0.1", "Region1", "server4", "Development", 9003, 33),
    ("104", "TestService", "1.0.0", "Region3", "server5", "Production", 9004, 34),
    ("105", "TestService", "1.0.0", "Region3", "server6", "Production", 9005, 35),
    ("106", "OtherService", "1.0.0", "Region2", "server7", "Production", 9006, 36),
]


def srv_records(name: str, port: int) -> list[tuple[int, int, int, str, int]]:
    """(priority, weight, port, target, ttl) of each SRV record of the
    answer, in order, each with its own TTL as sent (dnspython would give an
    RRset the least of them; SkyDNS 1's tests read each record's)."""
    query = dns.message.make_query(name, "SRV", use_edns=0, payload=4096)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(BOUND)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        wire, _ = sock.recvfrom(65535)
    message = tdns.Message()
    message.fromStr(wire)
    return [(r.payload.priority, r.payload.weight, r.payload.port,
             r.payload.target.name.decode() + ".", r.ttl)
            for r in message.answers if r.type == tdns.SRV]  # fmt: skip


def get_all_services_dns(port: int, domain: str = "skydns.local.") -> list[dict[str, Any]]:
    """SkyDNS 1's ``client.GetAllServicesDNS`` (``skydnsctl list -d``): SRV
    at the apex, over UDP without EDNS (miekg/dns's default), each SRV
    record read as a service."""
    answer = dns_query(domain, "SRV", port, use_edns=False)
    return [
        {"Name": f"{rrset.name} (Priority: {r.priority}, Weight: {r.weight})",
         "Host": r.target.to_text(), "Port": r.port, "TTL": rrset.ttl}
        for rrset in answer.answer for r in rrset
    ]  # fmt: skip


class Node:
    """One `twistd skydns --names skydns1` for a test class."""

    def __init__(self, *extra: str) -> None:
        self.process = SkyDNSProcess(["--names", "skydns1", *extra])

    def start(self) -> Node:
        self.process.start()
        self.process.wait_for("/ready")
        return self

    def call(self, method: str, path: str, body: bytes | None = None,
             secret: str | None = None) -> tuple[int, Any]:  # fmt: skip
        headers = {"Authorization": secret} if secret is not None else {}
        return http(method, self.process.url + path, body, headers, timeout=BOUND)

    def srv(self, name: str) -> list[tuple[int, int, int, str, int]]:
        return srv_records(name, self.process.dns_port)


class ServerTests(SynchronousTestCase):
    """server_test.go's API cases, each with the instance it registers."""

    node: ClassVar[Node]
    #: Where the registry lives (test_skydns1_etcd.py runs these on etcd).
    store: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.node = Node(*cls.store).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.process.cleanup()

    def put(self, uuid: str, **fields: Any) -> int:
        code, _ = self.node.call("PUT", f"/skydns/services/{uuid}", go_body(**fields))
        return code

    def test_add_service(self) -> None:
        """TestAddService: 201."""
        self.assertEqual(self.put("a123", **TEST_SERVICE), 201)

    def test_add_service_duplicate(self) -> None:
        """TestAddServiceDuplicate: 201, then 409 for the same UUID."""
        self.assertEqual(self.put("d123", **TEST_SERVICE), 201)
        self.assertEqual(self.put("d123", **TEST_SERVICE), 409)

    def test_remove_service(self) -> None:
        """TestRemoveService and TestRemoveUnknownService: 200, then 404."""
        self.put("r123", **TEST_SERVICE)
        self.assertEqual(self.node.call("DELETE", "/skydns/services/r123")[0], 200)
        self.assertEqual(self.node.call("DELETE", "/skydns/services/54321")[0], 404)

    def test_update_ttl(self) -> None:
        """TestUpdateTTL: PATCH with the whole struct, TTL 25: 200, and the
        service then shows 24 (a moment has passed).  Unknown UUID: 404."""
        self.put("u123", **TEST_SERVICE)
        body = go_body("u123", **{**TEST_SERVICE, "TTL": 25})
        self.assertEqual(self.node.call("PATCH", "/skydns/services/u123", body)[0], 200)
        _, got = self.node.call("GET", "/skydns/services/u123")
        self.assertIn(got["TTL"], (24, 25))
        self.assertEqual(self.node.call("PATCH", "/skydns/services/54321", body)[0], 404)

    def test_update_ttl_zero_removes(self) -> None:
        """`skydnsctl update UUID 0` (PATCH {"TTL":0}): in SkyDNS 1 the
        instance expired at once; here too: 200, then it is gone."""
        self.put("z123", **TEST_SERVICE)
        self.assertEqual(self.node.call("PATCH", "/skydns/services/z123", b'{"TTL":0}')[0], 200)
        self.assertEqual(self.node.call("GET", "/skydns/services/z123")[0], 404)

    def test_get_service(self) -> None:
        """TestGetService: 200 with the service, TTL 3 after a moment (4
        registered).  Deliberate difference: the body carries more fields
        (Priority, Weight, Protocol, Drain) and JSON spacing of its own;
        every field SkyDNS 1 wrote is there with its value."""
        self.put("g123", **TEST_SERVICE)
        code, got = self.node.call("GET", "/skydns/services/g123")
        self.assertEqual(code, 200)
        expected = {**TEST_SERVICE, "UUID": "g123", "NoExpire": False}
        self.assertEqual({k: got[k] for k in expected if k != "TTL"},
                         {k: v for k, v in expected.items() if k != "TTL"})  # fmt: skip
        self.assertIn(got["TTL"], (3, 4))
        self.assertTrue(got["Expires"].endswith("Z"))

    def test_host_failure(self) -> None:
        """TestHostFailure: no Host is a 400."""
        fields = {k: v for k, v in TEST_SERVICE.items() if k != "Host"}
        self.assertEqual(self.put("h123", **fields), 400)

    def test_callback(self) -> None:
        """TestCallback: 201 for a matching callback; removing the service
        sends it (SkyDNS 1's TODO: "check for the callback to be
        performed").  Reply is 127.0.0.1 rather than localhost, so the
        test's receiver is found whatever localhost resolves to."""
        port, received = callback_receiver(self)
        fields = {**TEST_SERVICE, "Region": "CallbackTest"}
        self.put("c123", **fields)
        callback = {k: fields[k] for k in ("Name", "Version", "Region", "Environment", "Host")}
        body = json.dumps({**callback, "Reply": "127.0.0.1", "Port": port}).encode()
        self.assertEqual(self.node.call("PUT", "/skydns/callbacks/c101", body)[0], 201)
        self.assertEqual(self.node.call("DELETE", "/skydns/services/c123")[0], 200)
        deadline = time.monotonic() + BOUND
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(received, ["/skydns/callbacks/c101"])

    def test_callback_failure(self) -> None:
        """TestCallbackFailure: a callback matching no service is a 404."""
        self.put("f123", **TEST_SERVICE)
        body = json.dumps({**TEST_SERVICE, "Environment": "Testing", "Reply": "localhost",
                           "Port": 9650}).encode()  # fmt: skip
        self.assertEqual(self.node.call("PUT", "/skydns/callbacks/f101", body)[0], 404)


class AuthenticationTests(SynchronousTestCase):
    """TestAuthenticationFailure and TestAuthenticationSuccess."""

    store: ClassVar[tuple[str, ...]] = ()

    def test_secret(self) -> None:
        """The raw secret in Authorization: 201.  Without it SkyDNS 1
        answered 403; deliberate difference: 401 (SkyDNS 1.0 itself moved
        to 401; neither Go client looks at the status)."""
        node = Node(*self.store, "--secret", "myimportantsecret").start()
        self.addCleanup(node.process.cleanup)
        body = go_body(**TEST_SERVICE)
        self.assertEqual(node.call("PUT", "/skydns/services/123", body)[0], 401)
        self.assertEqual(node.call("PUT", "/skydns/services/123", body,
                                   secret="myimportantsecret")[0], 201)  # fmt: skip


class FixtureTests(SynchronousTestCase):
    """server_test.go's cases over its ``services`` fixture."""

    node: ClassVar[Node]
    upstream: ClassVar[ThreadedUpstream]
    registered: ClassVar[float]
    store: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.upstream = ThreadedUpstream(answering(count=2), "127.0.0.1", 0)
        address = cls.upstream.start()
        cls.node = Node(*cls.store, "--nameserver", f"{address.host}:{address.port}").start()
        cls.registered = time.monotonic()
        for uuid, name, version, region, host, environment, port, ttl in FIXTURE:
            code, body = cls.node.call("PUT", f"/skydns/services/{uuid}", go_body(
                Name=name, Version=version, Region=region, Host=host,
                Environment=environment, Port=port, TTL=ttl))  # fmt: skip
            assert code == 201, (code, body)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.process.cleanup()
        cls.upstream.stop()

    def assert_ttl(self, got: int, registered: int) -> None:
        """The remaining lease: SkyDNS 1's tests expected TTL - 1 a moment
        after registering; this is TTL - the seconds since, give or take one."""
        elapsed = time.monotonic() - self.registered
        self.assertLessEqual(abs(got - (registered - elapsed)), 1.5, (got, registered, elapsed))

    def test_get_environments(self) -> None:
        """TestGetEnvironments: {"Development":2,"Production":5}."""
        code, got = self.node.call("GET", "/skydns/environments/")
        self.assertEqual((code, got), (200, {"Development": 2, "Production": 5}))

    def test_get_regions(self) -> None:
        """TestGetRegions: {"Region1":3,"Region2":2,"Region3":2}."""
        code, got = self.node.call("GET", "/skydns/regions/")
        self.assertEqual((code, got), (200, {"Region1": 3, "Region2": 2, "Region3": 2}))

    def test_get_services_with_queries(self) -> None:
        """TestGetServicesWithQueries: ?query= patterns in SkyDNS 1's order."""
        for query, count in (("*", 7), ("production", 5), ("testservice.production", 3),
                             ("region1.*.*.production", 1),
                             ("region1.*.testservice.production", 1),
                             ("region1.*.TestService.production", 1)):  # fmt: skip
            code, got = self.node.call("GET", "/skydns/services/?query=" + query)
            self.assertEqual((code, len(got)), (200, count), query)

    def test_dns_generic(self) -> None:
        """TestDNS, generic case: testservice.production SRV is server2,
        server5, server6 (priority 10, weight 33), TTL the remaining lease."""
        got = self.node.srv("testservice.production.skydns.local.")
        self.assertEqual([r[:4] for r in got], [
            (10, 33, 9001, "server2."), (10, 33, 9004, "server5."), (10, 33, 9005, "server6."),
        ])  # fmt: skip
        for record, registered in zip(got, (31, 34, 35), strict=True):
            self.assert_ttl(record[4], registered)

    def test_dns_region_priority(self) -> None:
        """TestDNS, region priority: region1.*.testservice.production is
        server2 at priority 10 weight 100, then server5 and server6 at
        priority 20 weight 50."""
        got = self.node.srv("region1.*.testservice.production.skydns.local.")
        self.assertEqual([r[:4] for r in got], [
            (10, 100, 9001, "server2."), (20, 50, 9004, "server5."), (20, 50, 9005, "server6."),
        ])  # fmt: skip

    def test_dns_a_records_at_the_apex(self) -> None:
        """TestDNSARecords: the domain's A record is the node's address."""
        answer = dns_query("skydns.local.", "A", self.node.process.dns_port)
        self.assertEqual([r.address for rrset in answer.answer for r in rrset], ["127.0.0.1"])

    def test_dns_forward(self) -> None:
        """TestDNSForward, over UDP and TCP, to a loopback upstream instead
        of 8.8.8.8."""
        for tcp in (False, True):
            answer = dns_query("www.example.com.", "A", self.node.process.dns_port, tcp=tcp)
            self.assertEqual(answer.rcode(), 0)
            self.assertEqual(len(answer.answer[0]), 2)

    def test_skydnsctl_list_dns(self) -> None:
        """`skydnsctl list -d` (GetAllServicesDNS) lists every instance."""
        listed = get_all_services_dns(self.node.process.dns_port)
        self.assertEqual(sorted((s["Host"], s["Port"]) for s in listed),
                         [(f"server{i}.", 9000 + i - 1) for i in range(1, 8)])  # fmt: skip
        self.assertEqual({s["Name"] for s in listed},
                         {"skydns.local. (Priority: 10, Weight: 14)"})  # fmt: skip


class ReadmeTests(SynchronousTestCase):
    """The DNS examples of SkyDNS 1's README, answered as it shows them."""

    node: ClassVar[Node]
    store: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def setUpClass(cls) -> None:
        cls.node = Node(*cls.store).start()
        for uuid, region, host, port in (("1001", "East", "web1.site.com", 80),
                                         ("1002", "East", "web2.site.com", 8080),
                                         ("1003", "West", "web3.site.com", 80),
                                         ("1004", "West", "web4.site.com", 80)):
            body = json.dumps({"Name": "TestService", "Version": "1.0.0",
                               "Environment": "Production", "Region": region, "Host": host,
                               "Port": port, "TTL": 4000}).encode()  # fmt: skip
            assert cls.node.call("PUT", f"/skydns/services/{uuid}", body)[0] == 201
        for uuid, region, host in (("1011", "East", "127.0.0.10"), ("1012", "East", "127.0.0.11"),
                                   ("1013", "West", "127.0.0.12"),
                                   ("1014", "West", "127.0.0.13")):  # fmt: skip
            body = json.dumps({"Name": "rails", "Version": "1.0.0", "Environment": "Production",
                               "Region": region, "Host": host, "Port": 80,
                               "TTL": 400000}).encode()  # fmt: skip
            assert cls.node.call("PUT", f"/skydns/services/{uuid}", body)[0] == 201

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.process.cleanup()

    WEB = [(80, "web1.site.com."), (8080, "web2.site.com."), (80, "web3.site.com."),
           (80, "web4.site.com.")]  # fmt: skip

    def test_testservice_queries(self) -> None:
        """testservice.production and 1-0-0.testservice.production: the four
        TestService instances at 10 25 (the README's 10 20 had a fifth
        instance, server24, registered before)."""
        for name in ("testservice.production", "1-0-0.testservice.production"):
            got = [r for r in self.node.srv(name + ".skydns.local.")]
            self.assertEqual([(p, w, port, t) for p, w, port, t, _ in got],
                             [(10, 25, port, target) for port, target in self.WEB], name)

    def test_production_lists_every_service(self) -> None:
        """production.skydns.local: every instance in Production."""
        self.assertEqual(len(self.node.srv("production.skydns.local.")), 8)

    def test_region_with_failover(self) -> None:
        """east.*.testservice.production: East at 10 50, the others for
        failover at priority 20 (the README's 20 33 had three)."""
        got = self.node.srv("east.*.testservice.production.skydns.local.")
        self.assertEqual([(p, w, port, t) for p, w, port, t, _ in got], [
            (10, 50, 80, "web1.site.com."), (10, 50, 8080, "web2.site.com."),
            (20, 50, 80, "web3.site.com."), (20, 50, 80, "web4.site.com."),
        ])  # fmt: skip
        got = self.node.srv("east.1-0-0.testservice.production.skydns.local.")
        self.assertEqual(len(got), 4)
        got = self.node.srv("east.*.*.production.skydns.local.")
        self.assertEqual([p for p, *_ in got], [10] * 4 + [20] * 4)

    def test_rails_a_records(self) -> None:
        """rails.production A: the four addresses."""
        answer = dns_query("rails.production.skydns.local.", "A", self.node.process.dns_port)
        self.assertEqual(sorted(r.address for rrset in answer.answer for r in rrset),
                         ["127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13"])
