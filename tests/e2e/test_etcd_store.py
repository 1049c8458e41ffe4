"""``--store etcd`` end to end: two real SkyDNS nodes on one real etcd on
loopback (SPEC.md §10).  A write on one node is in the other's DNS answers
at once; leases are etcd leases; callbacks are sent once; a node killed
with -9 loses nothing; etcd restarted, everything recovers, and while it is
down DNS answers from the copy for ``--etcd-max-staleness``, then SERVFAIL.
Skipped, saying why, where no etcd binary exists."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable, ClassVar

import dns.rcode
from twisted.trial.unittest import SynchronousTestCase

from tests.e2e.etcd import EtcdProcess, skip_without_etcd
from tests.e2e.harness import SkyDNSProcess, callback_receiver, dns_query, http

BOUND = 15.0


def etcd_node(etcd: EtcdProcess, node_id: str, *extra: str) -> SkyDNSProcess:
    return SkyDNSProcess(["--store", f"etcd://127.0.0.1:{etcd.client_port}", "--no-forward",
                          *extra], node_id=node_id)  # fmt: skip


def srv(node: SkyDNSProcess, name: str) -> list[str]:
    """The SRV targets ``node`` answers for ``name`` over TCP (empty for
    NXDOMAIN or SERVFAIL)."""
    answer = dns_query(name, "SRV", node.dns_port, tcp=True)
    return sorted(r.target.to_text() for rrset in answer.answer for r in rrset)


def wait_until(condition: Callable[[], bool], bound: float = BOUND, step: float = 0.02) -> float:
    """Seconds until ``condition()`` held; AssertionError after ``bound``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound:
            raise AssertionError(f"not within {bound}s")
        time.sleep(step)
    return time.monotonic() - start


def gateway(etcd: EtcdProcess, path: str, body: dict[str, Any]) -> Any:
    """One call to etcd's JSON gateway, as the tests' own client."""
    import urllib.request

    request = urllib.request.Request(etcd.url + path, data=json.dumps(body).encode(),
                                     method="POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def service(host: str = "10.0.0.1", **fields: Any) -> dict[str, Any]:
    return {"Name": "web", "Environment": "prod", "Host": host, "Port": 80, "TTL": 30, **fields}


class EtcdTestCase(SynchronousTestCase):
    """One etcd and two SkyDNS nodes, ``a`` and ``b``, for the class."""

    etcd: ClassVar[EtcdProcess]
    a: ClassVar[SkyDNSProcess]
    b: ClassVar[SkyDNSProcess]
    extra: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def setUpClass(cls) -> None:
        skip_without_etcd()
        cls.etcd = EtcdProcess().start()
        cls.a = etcd_node(cls.etcd, "a", *cls.extra)
        cls.b = etcd_node(cls.etcd, "b", *cls.extra)
        for node in (cls.a, cls.b):
            node.start(wait=False)
        for node in (cls.a, cls.b):
            node.wait_for("/ready")

    @classmethod
    def tearDownClass(cls) -> None:
        for node in (cls.a, cls.b):
            node.stop()
        cls.etcd.cleanup()

    def call(self, node: SkyDNSProcess, method: str, path: str, body: Any = None) -> Any:
        return http(method, node.url + path, body, timeout=BOUND)


class TwoNodesTests(EtcdTestCase):
    def test_register_on_one_answers_on_the_other(self) -> None:
        """Each of 20 registrations, acknowledged by one node, is in the
        other's DNS answers within 100 ms (median; the figures are printed)."""
        delays = []
        for i in range(20):
            writer, reader = (self.a, self.b) if i % 2 == 0 else (self.b, self.a)
            name = f"r{i}.prod.skydns.local."
            code, _ = self.call(writer, "PUT", f"/skydns/services/r{i}", service(Name=f"r{i}"))
            self.assertEqual(code, 201)
            delays.append(wait_until(lambda n=name, r=reader: bool(srv(r, n)), step=0.002))
        print(f"\nregister -> DNS on the other node: median {statistics.median(delays)*1000:.1f}"
              f" ms, max {max(delays)*1000:.1f} ms")  # fmt: skip
        self.assertLess(statistics.median(delays), 0.1)

    def test_conflict_consistent_read_and_unregister(self) -> None:
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/c1", service())[0], 201)
        self.assertEqual(self.call(self.b, "PUT", "/skydns/services/c1", service())[0], 409)
        code, body = self.call(self.b, "GET", "/skydns/services/c1?consistent=true")
        self.assertEqual((code, body["Host"]), (200, "10.0.0.1"))
        code, _ = self.call(self.b, "PATCH", "/skydns/services/c1", {"Drain": True})
        self.assertEqual(code, 200)
        self.assertTrue(self.call(self.a, "GET", "/skydns/services/c1?consistent=true")[1]["Drain"])
        self.assertEqual(self.call(self.b, "DELETE", "/skydns/services/c1")[0], 200)
        self.assertEqual(self.call(self.a, "GET", "/skydns/services/c1?consistent=true")[0], 404)
        self.assertEqual(self.call(self.a, "DELETE", "/skydns/services/c1")[0], 404)

    def test_lease_expiry_removes_from_both(self) -> None:
        """Instances under a lease renewed through either node stay past its
        TTL; once renewals stop, both nodes drop them within TTL + 2 s."""
        code, lease = self.call(self.a, "POST", "/skydns/leases", {"TTL": 3})
        self.assertEqual(code, 201)
        for i in range(3):
            body = {"Name": "leased", "Environment": "prod", "Host": f"10.0.1.{i}", "Port": 80,
                    "Lease": lease["ID"]}  # fmt: skip
            self.assertEqual(self.call(self.b, "PUT", f"/skydns/services/l{i}", body)[0], 201)
        name = "leased.prod.skydns.local."
        wait_until(lambda: len(srv(self.a, name)) == 3)
        for i in range(6):  # 6 s: twice the TTL
            node = (self.a, self.b)[i % 2]
            self.assertEqual(self.call(node, "PUT", f"/skydns/leases/{lease['ID']}")[0], 200)
            time.sleep(1.0)
            for each in (self.a, self.b):
                self.assertEqual(len(srv(each, name)), 3)
                ttl = dns_query(name, "SRV", each.dns_port).answer[0].ttl
                self.assertLessEqual(ttl, 3)
        stopped = time.monotonic()
        for each in (self.a, self.b):
            wait_until(lambda e=each: srv(e, name) == [])
        self.assertLess(time.monotonic() - stopped, 3 + 2)
        self.assertEqual(self.call(self.b, "GET", f"/skydns/leases/{lease['ID']}")[0], 404)

    def test_heartbeat_on_the_other_node_keeps_an_instance(self) -> None:
        """SkyDNS 1's PATCH heartbeat, sent to the node that did not register
        it, is an etcd keep-alive: the instance lives past its TTL."""
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/h1",
                                   service(Name="hb", TTL=3))[0], 201)  # fmt: skip
        for _ in range(5):
            time.sleep(1.0)
            self.assertEqual(self.call(self.b, "PATCH", "/skydns/services/h1", {"TTL": 3})[0], 200)
        self.assertEqual(srv(self.a, "hb.prod.skydns.local."), ["h1.skydns.local."])
        code, _ = self.call(self.b, "PATCH", "/skydns/services/h1", {"TTL": 20})
        self.assertEqual(code, 200)
        time.sleep(4)
        self.assertEqual(srv(self.a, "hb.prod.skydns.local."), ["h1.skydns.local."])

    def test_callback_is_sent_once(self) -> None:
        port, received = callback_receiver(self)
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/cb1",
                                   service(Name="cb"))[0], 201)  # fmt: skip
        callback = {"Name": "cb", "Environment": "prod", "Reply": "127.0.0.1", "Port": port}
        self.assertEqual(self.call(self.b, "PUT", "/skydns/callbacks/k1", callback)[0], 201)
        self.assertEqual(self.call(self.b, "DELETE", "/skydns/services/cb1")[0], 200)
        wait_until(lambda: bool(received))
        time.sleep(1.5)  # a second sender would have sent by now
        self.assertEqual(received, ["/skydns/callbacks/k1"])


    def test_a_key_skydns_cannot_read_is_left_alone(self) -> None:
        """Garbage written under the prefix by someone else: both nodes go on
        (and a node that reads it at start skips it), the API says 404 for
        it, and writes around it work."""
        import base64

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        gateway(self.etcd, "/v3/kv/put", {"key": b64(b"/skydns/services/junk"),
                                          "value": b64(b"{not json")})  # fmt: skip
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/j1", service(Name="j"))[0], 201)
        self.assertEqual(srv(self.b, "j.prod.skydns.local."), ["j1.skydns.local."])
        for node in (self.a, self.b):
            self.assertEqual(self.call(node, "GET", "/skydns/services/junk")[0], 404)
            self.assertEqual(self.call(node, "PATCH", "/skydns/services/junk",
                                       {"Drain": True})[0], 404)  # fmt: skip
            self.assertEqual(self.call(node, "GET", "/ready")[0], 200)
        late = etcd_node(self.etcd, "late")
        self.addCleanup(late.cleanup)
        late.start(wait=False)
        late.wait_for("/ready")
        self.assertEqual(srv(late, "j.prod.skydns.local."), ["j1.skydns.local."])


class FailureTests(EtcdTestCase):
    extra = ("--etcd-max-staleness", "3")

    def test_compacted_while_away_reads_afresh(self) -> None:
        """A node away while etcd restarted, took writes and compacted its
        history resumes its watch from a revision that is gone: it reads
        the registry afresh and shows exactly what etcd holds."""
        import signal

        assert self.b.process is not None
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/p1",
                                   service(Name="paused", TTL=600))[0], 201)  # fmt: skip
        name = "paused.prod.skydns.local."
        wait_until(lambda: srv(self.b, name) == ["p1.skydns.local."])
        self.b.process.send_signal(signal.SIGSTOP)
        try:
            self.etcd.stop()
            self.etcd.start()
            self.a.wait_for("/ready")
            self.assertEqual(self.call(self.a, "DELETE", "/skydns/services/p1")[0], 200)
            self.assertEqual(self.call(self.a, "PUT", "/skydns/services/p2",
                                       service(Name="paused", TTL=600))[0], 201)  # fmt: skip
            header = gateway(self.etcd, "/v3/kv/range", {"key": "AA=="})["header"]
            revision = int(header["revision"])
            gateway(self.etcd, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
        finally:
            self.b.process.send_signal(signal.SIGCONT)
        self.b.wait_for("/ready")
        wait_until(lambda: srv(self.b, name) == ["p2.skydns.local."])
        self.assertIn("reading afresh", self.b.log())

    def test_kill_9_of_a_node_loses_nothing(self) -> None:
        for i in range(30):
            node = (self.a, self.b)[i % 2]
            self.assertEqual(self.call(node, "PUT", f"/skydns/services/k{i}",
                                       service(Name="kept", TTL=600))[0], 201)  # fmt: skip
        self.a.kill()
        self.assertEqual(len(srv(self.b, "kept.prod.skydns.local.")), 30)
        self.a.start(wait=False)
        self.a.wait_for("/ready")
        self.assertEqual(len(srv(self.a, "kept.prod.skydns.local.")), 30)

    def test_etcd_restart(self) -> None:
        """etcd down: writes 503 saying so, /ready 503, DNS answers for the
        staleness bound then SERVFAIL.  etcd back: ready again, the data
        and the watch are there, without a restart."""
        self.assertEqual(self.call(self.a, "PUT", "/skydns/services/e1",
                                   service(Name="outage", TTL=600))[0], 201)  # fmt: skip
        name = "outage.prod.skydns.local."
        wait_until(lambda: srv(self.b, name) == ["e1.skydns.local."])
        self.etcd.stop()
        self.addCleanup(lambda: self.etcd.process.poll() is None or self.etcd.start())
        down = time.monotonic()
        code, body = self.call(self.b, "PUT", "/skydns/services/e2", service(Name="outage"))
        self.assertEqual(code, 503)
        self.assertIn("etcd", body["error"])
        wait_until(lambda: self.call(self.a, "GET", "/ready")[0] == 503, bound=3)
        self.assertEqual(srv(self.b, name), ["e1.skydns.local."])
        self.assertLess(time.monotonic() - down, 3)
        wait_until(lambda: dns_query(name, "SRV", self.b.dns_port).rcode() == dns.rcode.SERVFAIL,
                   bound=6)  # fmt: skip
        self.assertGreater(time.monotonic() - down, 2.5)
        self.etcd.start()
        for node in (self.a, self.b):
            node.wait_for("/ready", timeout=BOUND)
        self.assertEqual(srv(self.b, name), ["e1.skydns.local."])
        self.assertEqual(self.call(self.b, "PUT", "/skydns/services/e2",
                                   service(Name="outage", Host="10.0.0.2"))[0], 201)  # fmt: skip
        wait_until(lambda: len(srv(self.a, name)) == 2)




class TLSTests(SynchronousTestCase):
    def test_client_certificate(self) -> None:
        """``--store https://...`` with ``--etcd-ca/-cert/-key`` works against
        an etcd that requires client certificates; a node with no client
        certificate is refused by etcd, and says so (not ready, writes 503)."""
        import tempfile

        from tests.e2e.certs import issue

        skip_without_etcd()
        directory = tempfile.mkdtemp(prefix="skydns-etcd-tls-")
        ca = issue(directory, "ca")
        server = issue(directory, "etcd", ca)
        client = issue(directory, "skydns", ca)
        etcd = EtcdProcess((ca.cert_path, server.cert_path, server.key_path,
                            client.cert_path, client.key_path)).start()  # fmt: skip
        self.addCleanup(etcd.cleanup)
        store = ["--store", f"https://127.0.0.1:{etcd.client_port}", "--no-forward",
                 "--etcd-ca", ca.cert_path]  # fmt: skip
        good = SkyDNSProcess([*store, "--etcd-cert", client.cert_path,
                              "--etcd-key", client.key_path])  # fmt: skip
        bad = SkyDNSProcess(store)
        for node in (good, bad):
            self.addCleanup(node.cleanup)
            node.start()
        good.wait_for("/ready")
        code, _ = http("PUT", good.url + "/skydns/services/t1", service(Name="tls"))
        self.assertEqual(code, 201)
        self.assertEqual(srv(good, "tls.prod.skydns.local."), ["t1.skydns.local."])
        code, body = http("GET", bad.url + "/ready")
        self.assertEqual(code, 503, body)
        code, body = http("PUT", bad.url + "/skydns/services/t2", service(Name="tls"))
        self.assertEqual(code, 503, body)
        self.assertIn("etcd", body["error"])
        print("\nwithout a client certificate:", body["error"])
